/* Mutation fuzzer of the C API: feeds corrupted variants of a valid artifact (bit flips,
 * byte runs, truncations, edited section offsets and lengths, edited tensor-directory and
 * subnet-table words; the checksum resealed most of the time so the checks behind it are
 * reached) to sn_model_check and sn_model_load, and runs every subnet of whatever loads,
 * plus random config texts and budgets. Each variant sits in a buffer of exactly its size
 * and each session in an arena of exactly its size, so under valgrind any read or write
 * outside them is reported. Exits 1 on an unexpected status.
 *
 *   fuzz_capi MODEL [ITERATIONS=1000] [SEED=1] */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* FORMAT.md 2: CRC-32 (zlib's) of the file with the checksum field zeroed. */
static void reseal(uint8_t *b, size_t n) {
    if (n < 64) return;
    put32(b + 20, 0);
    put32(b + 20, (uint32_t)crc32(0L, b, (uInt)n));
}

/* Offset of a section's contents and its length, from the (unmutated) section table. */
static int find_section(const uint8_t *b, size_t n, const char *tag, size_t *off, size_t *len) {
    size_t count = le32(b + 24), table = le32(b + 28);
    for (size_t i = 0; i < count && table + 16 * (i + 1) <= n; i++) {
        const uint8_t *e = b + table + 16 * i;
        if (memcmp(e, tag, 4) == 0) {
            *off = le32(e + 4);
            *len = le32(e + 8);
            return *off + *len <= n;
        }
    }
    return 0;
}

static void mutate(uint8_t *b, size_t *n, const uint8_t *orig) {
    size_t len = *n;
    int kinds = 1 + (int)below(3);
    for (int k = 0; k < kinds; k++) {
        switch (below(7)) {
        case 0: /* bit flips, half of them in the first 1 KB (header, table, space) */
            for (int i = 1 + (int)below(6); i > 0; i--) {
                size_t at = below(2) ? below(len < 1024 ? len : 1024) : below(len);
                b[at] ^= (uint8_t)(1u << below(8));
            }
            break;
        case 1: /* a run of random bytes */
        {
            size_t at = below(len), run = 1 + below(32);
            for (size_t i = at; i < at + run && i < len; i++) b[i] = (uint8_t)next();
            break;
        }
        case 2: /* an edited section offset or length */
        {
            size_t count = le32(orig + 24), table = le32(orig + 28);
            size_t at = table + 16 * below(count) + 4 + 4 * below(3);
            if (at + 4 <= len) {
                uint32_t v = le32(b + at);
                switch (below(4)) {
                case 0: v += (uint32_t)below(256); break;
                case 1: v -= (uint32_t)below(256); break;
                case 2: v = (uint32_t)next(); break;
                default: v ^= 1u << below(32);
                }
                put32(b + at, v);
            }
            break;
        }
        case 3: /* an edited word in the tensor directory, subnet table or space */
        {
            static const char *tags[] = {"TDIR", "SUBN", "SPAC", "PREP", "BNST"};
            size_t off, slen;
            if (find_section(orig, len, tags[below(5)], &off, &slen) && slen >= 4) {
                size_t at = off + (below(slen / 4) * 4);
                uint32_t v = le32(b + at);
                put32(b + at, below(2) ? v + (uint32_t)below(8) - 4 : (uint32_t)next());
            }
            break;
        }
        case 4: /* truncation */
            len = below(len + 1);
            break;
        case 5: /* an edited header field */
        {
            size_t at = 8 + 4 * below(6);
            put32(b + at, below(2) ? le32(b + at) + (uint32_t)below(8) - 4 : (uint32_t)next());
            break;
        }
        default: /* a NaN or huge float among the weights */
        {
            size_t off, slen;
            if (find_section(orig, len, "WGHT", &off, &slen) && slen >= 4) {
                size_t at = off + below(slen / 4) * 4;
                put32(b + at, below(2) ? 0x7fc00000u : 0x7f7fffffu);
            }
        }
        }
    }
    *n = len;
}

static int valid_status(sn_status st) {
    return st == SN_OK || st == SN_OVER_BUDGET || (st >= 10 && st <= 38);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [ITERATIONS] [SEED]\n", argv[0]);
        return 2;
    }
    unsigned long iters = argc > 2 ? parse_count("ITERATIONS", argv[2], 1000000000ul) : 1000;
    unsigned long seed = argc > 3 ? parse_count("SEED", argv[3], 1000000000ul) : 1;
    if (iters == 0 || seed == 0) return 2;
    rng ^= seed * 0x2545F4914F6CDD1Du;
    size_t len;
    uint8_t *orig = read_file(argv[1], &len);
    if (!orig) return 2;
    {
        /* The mutations read the header and section table of the original: it must load. */
        char why[256];
        if (sn_model_check(orig, len, why, sizeof why) != SN_OK) {
            fprintf(stderr, "error: %s is not a valid artifact to mutate: %s\n", argv[1], why);
            free(orig);
            return 2;
        }
    }
    static _Alignas(SN_STORAGE_ALIGN) uint8_t storage[SN_MODEL_STORAGE_BYTES];
    unsigned long counts[64] = {0}, loaded = 0, runs = 0, bad = 0;
    uint8_t *work = malloc(len);
    for (unsigned long it = 0; it < iters; it++) {
        memcpy(work, orig, len);
        size_t n = len;
        mutate(work, &n, orig);
        if (below(10) < 8) reseal(work, n);
        /* exactly n bytes, so that any read past the end is caught under valgrind */
        uint8_t *b = malloc(n ? n : 1);
        memcpy(b, work, n);
        char msg[96];
        sn_status chk = sn_model_check(b, n, msg, sizeof msg);
        sn_model *m;
        sn_status st = sn_model_load(storage, sizeof storage, b, n, &m);
        counts[(unsigned)st < 64 ? (unsigned)st : 63]++;
        if (st != chk || !valid_status(st)) {
            fprintf(stderr, "iteration %lu: unexpected status %d / %d (%s)\n", it, st, chk, msg);
            bad++;
        }
        if (st == SN_OK) {
            loaded++;
            sn_model_info info;
            sn_model_get_info(m, &info);
            /* a session of exactly the size a random stored subnet needs, or the maximum */
            size_t arena_len = info.session_arena_bytes;
            if (info.subnet_count && below(2)) {
                sn_subnet_info sub;
                sn_model_get_subnet(m, below(info.subnet_count), &sub);
                arena_len = sub.session_arena_bytes;
            }
            uint8_t *arena = aligned_alloc(SN_STORAGE_ALIGN, round_up(arena_len, SN_STORAGE_ALIGN));
            float *in = malloc(info.input_len * sizeof *in);
            float *logits = malloc(info.classes * sizeof *logits);
            sn_session *s;
            for (size_t i = 0; i < info.input_len; i++) in[i] = (float)(next() % 200) / 100.0f - 1.0f;
            if (sn_session_open(m, arena, arena_len, &s) == SN_OK) {
                for (size_t i = 0; i < info.subnet_count; i++) {
                    if (sn_session_select_index(s, i, NULL) == SN_OK &&
                        sn_session_run(s, in, info.input_len, logits, info.classes, NULL) == SN_OK)
                        runs++;
                    char text[SN_CONFIG_TEXT_BYTES];
                    size_t tl;
                    if (sn_model_get_subnet_config(m, i, text, sizeof text, &tl) == SN_OK) {
                        /* the stored config, or a mutated copy of it */
                        if (below(2) && tl) text[below(tl)] = "0123456789[],: {}\"x"[below(19)];
                        sn_session_select_config(s, text, tl, NULL);
                    }
                }
                sn_session_select_latency(s, (uint32_t)next(), NULL);
                sn_session_select_battery(s, (uint32_t)below(120), (int)below(2), NULL);
                if (sn_session_run(s, in, info.input_len, logits, info.classes, NULL) == SN_OK) runs++;
            }
            free(logits);
            free(in);
            free(arena);
        }
        free(b);
    }
    printf("fuzz_capi: %lu variants of %s (%zu bytes): %lu loaded, %lu runs; statuses:",
           iters, argv[1], len, loaded, runs);
    for (int i = 0; i < 64; i++)
        if (counts[i]) printf(" %d:%lu", i, counts[i]);
    printf("\n");
    free(work);
    free(orig);
    return bad ? 1 : 0;
}
