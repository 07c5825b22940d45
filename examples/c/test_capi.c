/* C tests of the supernet C API: every exported function, its success path and every
 * misuse (NULL pointers, short buffers, misaligned pointers, a too-small arena, truncated
 * and corrupted models, wrong input lengths, unknown ids, invalid configs, moved handles).
 * Failed calls must return the documented status and leave outputs untouched. Run under
 * valgrind by `make check`.
 *
 *   test_capi MODEL */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

static int failures = 0, checks = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define EXPECT(call, status)                                                          \
    do {                                                                              \
        checks++;                                                                     \
        sn_status got_ = (call);                                                      \
        if (got_ != (status)) {                                                       \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__,    \
                    __LINE__, #call, (int)got_, sn_status_message(got_), #status);    \
        }                                                                             \
    } while (0)

static _Alignas(SN_STORAGE_ALIGN) uint8_t storage[SN_MODEL_STORAGE_BYTES + 64];

/* A fake clock: each call advances by the next value of `steps` (cycled). */
typedef struct {
    uint64_t now;
    unsigned calls;
} fake_clock;

static uint64_t fake_now(void *user) {
    fake_clock *c = user;
    c->calls++;
    /* calls come in (start, end) pairs; a run takes 100 us */
    if (c->calls % 2 == 0) c->now += 100;
    return c->now;
}

static int last_error_contains(const sn_session *s, const char *needle) {
    char buf[256];
    if (sn_session_get_last_error(s, buf, sizeof buf) != SN_OK) return 0;
    if (!strstr(buf, needle)) {
        fprintf(stderr, "  last error: %s (expected it to mention %s)\n", buf, needle);
        return 0;
    }
    return 1;
}

static void test_versions_and_statuses(void) {
    CHECK(sn_version() == ((SN_VERSION_MAJOR << 16) | (SN_VERSION_MINOR << 8) | SN_VERSION_PATCH));
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", SN_VERSION_MAJOR, SN_VERSION_MINOR, SN_VERSION_PATCH);
    CHECK(strcmp(sn_version_string(), v) == 0);
    CHECK(SN_FORMAT_VERSION_MAJOR == 1);
    const int codes[] = {SN_OK, SN_OVER_BUDGET, SN_ERR_NULL_POINTER, SN_ERR_MISALIGNED,
                         SN_ERR_BUFFER_TOO_SMALL, SN_ERR_BAD_HANDLE, SN_ERR_BAD_ARGUMENT,
                         SN_ERR_TOO_SHORT, SN_ERR_BAD_MAGIC, SN_ERR_UNSUPPORTED_VERSION,
                         SN_ERR_SIZE_MISMATCH, SN_ERR_BAD_HEADER, SN_ERR_CHECKSUM,
                         SN_ERR_MODEL_MISALIGNED, SN_ERR_BAD_SECTION, SN_ERR_BAD_SPACE,
                         SN_ERR_BAD_TENSOR, SN_ERR_BAD_SUBNET, SN_ERR_CONFIG,
                         SN_ERR_UNKNOWN_SUBNET, SN_ERR_ARENA_TOO_SMALL, SN_ERR_INPUT_LENGTH,
                         SN_ERR_OUTPUT_LENGTH, SN_ERR_NO_LATENCIES,
                         SN_ERR_LATENCY_TABLE_LENGTH, SN_ERR_BAD_POLICY, SN_ERR_INTERNAL};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *m = sn_status_message(codes[i]);
        CHECK(m != NULL && strlen(m) > 0 && strcmp(m, "unknown status code") != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(m, sn_status_message(codes[j])) != 0);
    }
    CHECK(strcmp(sn_status_message(-1), "unknown status code") == 0);
    CHECK(strcmp(sn_status_message(1000), "unknown status code") == 0);
}

static void test_check_and_load(const uint8_t *bytes, size_t len) {
    char msg[128];
    EXPECT(sn_model_check(bytes, len, msg, sizeof msg), SN_OK);
    CHECK(strcmp(msg, "ok") == 0);
    EXPECT(sn_model_check(bytes, len, NULL, 0), SN_OK);
    EXPECT(sn_model_check(NULL, len, msg, sizeof msg), SN_ERR_NULL_POINTER);
    EXPECT(sn_model_check(bytes, 10, msg, sizeof msg), SN_ERR_TOO_SHORT);
    EXPECT(sn_model_check(bytes, len - 1, msg, sizeof msg), SN_ERR_SIZE_MISMATCH);
    CHECK(strstr(msg, "truncated") != NULL);
    /* a message buffer of 2 bytes gets a cut, terminated text */
    EXPECT(sn_model_check(bytes, len - 1, msg, 2), SN_ERR_SIZE_MISMATCH);
    CHECK(strlen(msg) == 1);

    uint8_t *copy = aligned_alloc(64, round_up(len + 64, 64));
    memcpy(copy, bytes, len);
    copy[len / 2] ^= 0x10;
    EXPECT(sn_model_check(copy, len, msg, sizeof msg), SN_ERR_CHECKSUM);
    copy[len / 2] ^= 0x10;
    copy[1] = 'X';
    EXPECT(sn_model_check(copy, len, msg, sizeof msg), SN_ERR_BAD_MAGIC);
    copy[1] = bytes[1];
    copy[8] = 9; /* major version 9 */
    EXPECT(sn_model_check(copy, len, msg, sizeof msg), SN_ERR_UNSUPPORTED_VERSION);
    memmove(copy + 1, bytes, len);
    EXPECT(sn_model_check(copy + 1, len, msg, sizeof msg), SN_ERR_MODEL_MISALIGNED);
    free(copy);

    sn_model *sentinel = (sn_model *)(uintptr_t)0x1234;
    sn_model *m = sentinel;
    EXPECT(sn_model_load(NULL, sizeof storage, bytes, len, &m), SN_ERR_NULL_POINTER);
    EXPECT(sn_model_load(storage + 8, SN_MODEL_STORAGE_BYTES, bytes, len, &m), SN_ERR_MISALIGNED);
    EXPECT(sn_model_load(storage, SN_MODEL_STORAGE_BYTES - 1, bytes, len, &m), SN_ERR_BUFFER_TOO_SMALL);
    EXPECT(sn_model_load(storage, sizeof storage, NULL, len, &m), SN_ERR_NULL_POINTER);
    EXPECT(sn_model_load(storage, sizeof storage, bytes, len - 100, &m), SN_ERR_SIZE_MISMATCH);
    EXPECT(sn_model_load(storage, sizeof storage, bytes, len, NULL), SN_ERR_NULL_POINTER);
    CHECK(m == sentinel); /* nothing written on failure */
}

static void test_model(const sn_model *m, const sn_model_info *info) {
    sn_model_info junk;
    EXPECT(sn_model_get_info(NULL, &junk), SN_ERR_NULL_POINTER);
    EXPECT(sn_model_get_info(m, NULL), SN_ERR_NULL_POINTER);
    static _Alignas(SN_STORAGE_ALIGN) uint8_t zeros[SN_MODEL_STORAGE_BYTES];
    EXPECT(sn_model_get_info((const sn_model *)zeros, &junk), SN_ERR_BAD_HANDLE);
    EXPECT(sn_model_get_info((const sn_model *)(zeros + 4), &junk), SN_ERR_MISALIGNED);

    CHECK(info->format_version_major == SN_FORMAT_VERSION_MAJOR);
    CHECK(info->input_len == (size_t)info->in_channels * info->resolution * info->resolution);
    CHECK(info->subnet_count >= 2);
    CHECK(info->largest_macs > info->smallest_macs);
    CHECK(info->slots > 0 && info->stages > 0);

    sn_subnet_info sub, untouched;
    memset(&untouched, 0xAB, sizeof untouched);
    sub = untouched;
    EXPECT(sn_model_get_subnet(m, info->subnet_count, &sub), SN_ERR_UNKNOWN_SUBNET);
    CHECK(memcmp(&sub, &untouched, sizeof sub) == 0);
    EXPECT(sn_model_get_subnet(m, 0, NULL), SN_ERR_NULL_POINTER);
    for (size_t i = 0; i < info->subnet_count; i++) {
        EXPECT(sn_model_get_subnet(m, i, &sub), SN_OK);
        CHECK(sub.index == i);
        CHECK(strlen(sub.name) < SN_NAME_BYTES);
        CHECK(sub.session_arena_bytes <= info->session_arena_bytes);
        CHECK(sub.macs >= info->smallest_macs && sub.macs <= info->largest_macs);
        size_t found = 999;
        EXPECT(sn_model_find_subnet(m, sub.id, &found), SN_OK);
        CHECK(found == i);

        char text[SN_CONFIG_TEXT_BYTES];
        size_t len = 0, need = 0;
        EXPECT(sn_model_get_subnet_config(m, i, text, sizeof text, &len), SN_OK);
        CHECK(len == strlen(text) && strncmp(text, "{\"ks\": [", 8) == 0);
        EXPECT(sn_model_get_subnet_config(m, i, text, sizeof text, NULL), SN_OK);
        EXPECT(sn_model_get_config_arena_bytes(m, text, len, &need), SN_OK);
        CHECK(need == sub.session_arena_bytes);
        char small[16];
        memset(small, 'z', sizeof small);
        size_t len2 = 777;
        EXPECT(sn_model_get_subnet_config(m, i, small, sizeof small, &len2), SN_ERR_BUFFER_TOO_SMALL);
        CHECK(len2 == 777 && small[0] == 'z');
        EXPECT(sn_model_get_subnet_config(m, i, NULL, 100, &len2), SN_ERR_NULL_POINTER);
    }
    size_t idx = 42;
    EXPECT(sn_model_find_subnet(m, 0xFFFFFFFFu, &idx), SN_ERR_UNKNOWN_SUBNET);
    CHECK(idx == 42);
    EXPECT(sn_model_find_subnet(m, 0, NULL), SN_ERR_NULL_POINTER);
    size_t need = 0;
    const char *bad = "{\"ks\": [3], \"e\": [3], \"d\": [2]}";
    EXPECT(sn_model_get_config_arena_bytes(m, bad, strlen(bad), &need), SN_ERR_CONFIG);
    EXPECT(sn_model_get_config_arena_bytes(m, NULL, 5, &need), SN_ERR_NULL_POINTER);
    CHECK(need == 0);

    uint8_t *pixels = calloc(info->input_len, 1);
    float *in = calloc(info->input_len, sizeof *in);
    EXPECT(sn_model_preprocess_u8(m, pixels, info->input_len, in, info->input_len), SN_OK);
    EXPECT(sn_model_preprocess_u8(m, pixels, info->input_len - 1, in, info->input_len), SN_ERR_INPUT_LENGTH);
    EXPECT(sn_model_preprocess_u8(m, pixels, info->input_len, in, info->input_len - 1), SN_ERR_BUFFER_TOO_SMALL);
    EXPECT(sn_model_preprocess_u8(m, NULL, info->input_len, in, info->input_len), SN_ERR_NULL_POINTER);
    EXPECT(sn_model_preprocess_u8(m, pixels, info->input_len, NULL, info->input_len), SN_ERR_NULL_POINTER);
    free(pixels);
    free(in);
}

static void test_session(const sn_model *m, const sn_model_info *info) {
    size_t arena_len = info->session_arena_bytes;
    uint8_t *arena = aligned_alloc(SN_STORAGE_ALIGN, round_up(arena_len + 16, SN_STORAGE_ALIGN));
    sn_session *sentinel = (sn_session *)(uintptr_t)0x5678, *s = sentinel;
    EXPECT(sn_session_open(NULL, arena, arena_len, &s), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_open(m, NULL, arena_len, &s), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_open(m, arena + 4, arena_len, &s), SN_ERR_MISALIGNED);
    EXPECT(sn_session_open(m, arena, SN_SESSION_OBJECT_BYTES, &s), SN_ERR_ARENA_TOO_SMALL);
    EXPECT(sn_session_open(m, arena, 0, &s), SN_ERR_ARENA_TOO_SMALL);
    EXPECT(sn_session_open(m, arena, arena_len, NULL), SN_ERR_NULL_POINTER);
    CHECK(s == sentinel);
    EXPECT(sn_session_open(m, arena, arena_len, &s), SN_OK);

    sn_selection sel, untouched;
    EXPECT(sn_session_get_active(s, &sel), SN_OK);
    EXPECT(sn_session_get_active(NULL, &sel), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_get_active(s, NULL), SN_ERR_NULL_POINTER);

    float *in = calloc(info->input_len + 1, sizeof *in);
    float *logits = calloc(info->classes + 1, sizeof *logits);
    float *logits2 = calloc(info->classes, sizeof *logits2);
    for (size_t i = 0; i < info->input_len; i++) in[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    size_t cls = 999;

    /* select by index and by id; a stored config selects that subnet too */
    for (size_t i = 0; i < info->subnet_count; i++) {
        sn_subnet_info sub;
        sn_model_get_subnet(m, i, &sub);
        EXPECT(sn_session_select_index(s, i, &sel), SN_OK);
        CHECK(sel.index == (int32_t)i && sel.id == sub.id && sel.fits == 1);
        CHECK(sel.macs == sub.macs && sel.params == sub.params);
        EXPECT(sn_session_run(s, in, info->input_len, logits, info->classes, &cls), SN_OK);
        CHECK(cls < info->classes);
        char text[SN_CONFIG_TEXT_BYTES];
        size_t len;
        sn_model_get_subnet_config(m, i, text, sizeof text, &len);
        EXPECT(sn_session_select_index(s, (i + 1) % info->subnet_count, NULL), SN_OK);
        EXPECT(sn_session_select_config(s, text, len, &sel), SN_OK);
        CHECK(sel.index == (int32_t)i);
        EXPECT(sn_session_run(s, in, info->input_len, logits2, info->classes, NULL), SN_OK);
        CHECK(memcmp(logits, logits2, info->classes * sizeof *logits) == 0);
        EXPECT(sn_session_select_id(s, sub.id, &sel), SN_OK);
        CHECK(sel.index == (int32_t)i && sel.changed == 0);
    }
    /* misuse of selection: nothing changes */
    EXPECT(sn_session_get_active(s, &untouched), SN_OK);
    memset(&sel, 0xCD, sizeof sel);
    sn_selection before = sel;
    EXPECT(sn_session_select_index(s, info->subnet_count, &sel), SN_ERR_UNKNOWN_SUBNET);
    EXPECT(sn_session_select_index(s, (size_t)-1, &sel), SN_ERR_UNKNOWN_SUBNET);
    EXPECT(sn_session_select_id(s, 0xFFFFFFF0u, &sel), SN_ERR_UNKNOWN_SUBNET);
    const char *wrong_count = "{\"ks\": [3, 5], \"e\": [3], \"d\": [2]}";
    EXPECT(sn_session_select_config(s, wrong_count, strlen(wrong_count), &sel), SN_ERR_CONFIG);
    CHECK(last_error_contains(s, "\"ks\""));
    const char *not_json = "ks=3";
    EXPECT(sn_session_select_config(s, not_json, strlen(not_json), &sel), SN_ERR_CONFIG);
    const char bad_utf8[] = {'{', (char)0xff, '}'};
    EXPECT(sn_session_select_config(s, bad_utf8, 3, &sel), SN_ERR_BAD_ARGUMENT);
    CHECK(last_error_contains(s, "UTF-8"));
    EXPECT(sn_session_select_config(s, NULL, 10, &sel), SN_ERR_NULL_POINTER);
    /* a value outside the space: take a stored config and put expand 5 in slot 0 */
    {
        char text[SN_CONFIG_TEXT_BYTES];
        size_t len;
        sn_model_get_subnet_config(m, 0, text, sizeof text, &len);
        char *e = strstr(text, "\"e\": [");
        CHECK(e != NULL);
        if (e) e[6] = '5';
        EXPECT(sn_session_select_config(s, text, len, &sel), SN_ERR_CONFIG);
        CHECK(last_error_contains(s, "\"e\"[0] = 5"));
    }
    CHECK(memcmp(&sel, &before, sizeof sel) == 0);
    sn_selection now;
    EXPECT(sn_session_get_active(s, &now), SN_OK);
    CHECK(now.index == untouched.index && now.macs == untouched.macs);
    EXPECT(sn_session_select_index(NULL, 0, NULL), SN_ERR_NULL_POINTER);

    /* running: wrong lengths, NULL, misaligned */
    float before_logits = logits[0];
    EXPECT(sn_session_run(s, in, info->input_len - 1, logits, info->classes, &cls), SN_ERR_INPUT_LENGTH);
    EXPECT(sn_session_run(s, in, info->input_len + 1, logits, info->classes, &cls), SN_ERR_INPUT_LENGTH);
    EXPECT(sn_session_run(s, in, info->input_len, logits, info->classes - 1, &cls), SN_ERR_OUTPUT_LENGTH);
    EXPECT(sn_session_run(s, NULL, info->input_len, logits, info->classes, &cls), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_run(s, in, info->input_len, NULL, info->classes, &cls), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_run(s, (const float *)((const char *)in + 1), info->input_len, logits, info->classes, &cls), SN_ERR_MISALIGNED);
    CHECK(logits[0] == before_logits);
    CHECK(last_error_contains(s, "aligned"));
    EXPECT(sn_session_run(s, in, info->input_len, logits, info->classes + 1, NULL), SN_OK);

    /* latencies: the artifact's, then a calibration with a fake clock (100 us per run) */
    uint32_t *table = calloc(info->subnet_count, sizeof *table);
    EXPECT(sn_session_get_latencies(s, table, info->subnet_count), SN_OK);
    for (size_t i = 0; i < info->subnet_count; i++) CHECK(table[i] > 0);
    EXPECT(sn_session_get_latencies(s, table, info->subnet_count - 1), SN_ERR_LATENCY_TABLE_LENGTH);
    EXPECT(sn_session_get_latencies(s, NULL, info->subnet_count), SN_ERR_NULL_POINTER);
    fake_clock clock = {0, 0};
    EXPECT(sn_session_calibrate(s, NULL, &clock, in, info->input_len, 3), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_calibrate(s, fake_now, &clock, in, info->input_len - 1, 3), SN_ERR_INPUT_LENGTH);
    EXPECT(sn_session_calibrate(s, fake_now, &clock, NULL, info->input_len, 3), SN_ERR_NULL_POINTER);
    CHECK(clock.calls == 0);
    EXPECT(sn_session_calibrate(s, fake_now, &clock, in, info->input_len, 3), SN_OK);
    CHECK(clock.calls == 2 * 3 * info->subnet_count);
    EXPECT(sn_session_get_latencies(s, table, info->subnet_count), SN_OK);
    for (size_t i = 0; i < info->subnet_count; i++) CHECK(table[i] == 100);
    /* all equal: the most accurate subnet fits 100 us */
    EXPECT(sn_session_select_latency(s, 100, &sel), SN_OK);
    CHECK(sel.fits == 1 && sel.latency_us == 100 && sel.budget_us == 100);
    EXPECT(sn_session_select_latency(s, 99, &sel), SN_OVER_BUDGET);
    CHECK(sel.fits == 0);
    /* a saved table: subnet i takes 1000 * (i + 1) us */
    for (size_t i = 0; i < info->subnet_count; i++) table[i] = (uint32_t)(1000 * (i + 1));
    EXPECT(sn_session_set_latencies(s, table, info->subnet_count), SN_OK);
    memset(table, 0, info->subnet_count * sizeof *table);
    EXPECT(sn_session_get_latencies(s, table, info->subnet_count), SN_OK);
    CHECK(table[0] == 1000);
    EXPECT(sn_session_set_latencies(s, table, 1), info->subnet_count == 1 ? SN_OK : SN_ERR_LATENCY_TABLE_LENGTH);
    EXPECT(sn_session_set_latencies(s, NULL, info->subnet_count), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_select_latency(s, 1500, &sel), SN_OK);
    CHECK(sel.index == 0 && sel.latency_us == 1000);
    EXPECT(sn_session_select_latency(s, 500, &sel), SN_OVER_BUDGET);
    CHECK(sel.index == 0 && sel.fits == 0); /* the fastest, with a distinct status */
    /* a budget jittering around the second subnet's latency does not flap */
    EXPECT(sn_session_select_latency(s, 2000, &sel), SN_OK);
    int switches = 0;
    for (int k = 0; k < 20; k++) {
        EXPECT(sn_session_select_latency(s, k % 2 ? 2050 : 1990, &sel), SN_OK);
        switches += sel.changed;
        CHECK(sel.latency_us <= sel.budget_us);
    }
    CHECK(switches <= 1);
    EXPECT(sn_session_clear_latencies(s), SN_OK);
    EXPECT(sn_session_clear_latencies(NULL), SN_ERR_NULL_POINTER);

    /* battery policy */
    sn_battery_policy p;
    EXPECT(sn_session_get_battery_policy(s, &p), SN_OK);
    CHECK(p.high_level == 80 && p.low_level == 20 && p.level_hysteresis == 3 && p.charging_full == 1);
    EXPECT(sn_session_get_battery_policy(s, NULL), SN_ERR_NULL_POINTER);
    float best = -1;
    for (size_t i = 0; i < info->subnet_count; i++) {
        sn_subnet_info sub;
        sn_model_get_subnet(m, i, &sub);
        if (sub.accuracy > best) best = sub.accuracy;
    }
    EXPECT(sn_session_select_battery(s, 100, 0, &sel), SN_OK);
    CHECK(sel.accuracy == best); /* a full battery runs the most accurate subnet */
    int32_t full = sel.index;
    EXPECT(sn_session_select_battery(s, 0, 0, &sel), SN_OK);
    int32_t empty = sel.index;
    EXPECT(sn_session_select_battery(s, 250, 0, &sel), SN_OK); /* >100 counts as 100 */
    CHECK(sel.index == full);
    EXPECT(sn_session_select_battery(s, 3, 1, &sel), SN_OK); /* charging: full budget */
    CHECK(sel.index == full);
    EXPECT(sn_session_select_battery(s, 0, 0, &sel), SN_OK);
    CHECK(sel.index == empty);
    sn_battery_policy bad = p;
    bad.low_level = 90;
    EXPECT(sn_session_set_battery_policy(s, &bad), SN_ERR_BAD_POLICY);
    CHECK(last_error_contains(s, "low_level"));
    bad = p;
    bad.level_hysteresis = 60;
    EXPECT(sn_session_set_battery_policy(s, &bad), SN_ERR_BAD_POLICY);
    EXPECT(sn_session_set_battery_policy(s, NULL), SN_ERR_NULL_POINTER);
    sn_battery_policy fixed = p;
    fixed.full_budget_us = 1;
    fixed.min_budget_us = 1;
    fixed.charging_full = 0;
    EXPECT(sn_session_set_battery_policy(s, &fixed), SN_OK);
    EXPECT(sn_session_select_battery(s, 100, 1, &sel), SN_OVER_BUDGET);
    EXPECT(sn_session_set_battery_policy(s, &p), SN_OK);
    EXPECT(sn_session_set_upgrade_margin(s, 101), SN_ERR_BAD_POLICY);
    EXPECT(sn_session_set_upgrade_margin(s, 0xFFFFFFFFu), SN_ERR_BAD_POLICY);
    EXPECT(sn_session_set_upgrade_margin(s, 25), SN_OK);

    /* last error */
    char buf[8];
    EXPECT(sn_session_get_last_error(s, buf, sizeof buf), SN_OK);
    CHECK(strcmp(buf, "no erro") == 0); /* cut to fit, terminated */
    EXPECT(sn_session_get_last_error(s, NULL, 8), SN_ERR_NULL_POINTER);
    EXPECT(sn_session_get_last_error(s, buf, 0), SN_ERR_BUFFER_TOO_SMALL);

    /* a copied session object is not a session */
    uint8_t *moved = aligned_alloc(SN_STORAGE_ALIGN, SN_SESSION_OBJECT_BYTES);
    memcpy(moved, s, SN_SESSION_OBJECT_BYTES);
    EXPECT(sn_session_select_index((sn_session *)moved, 0, NULL), SN_ERR_BAD_HANDLE);
    EXPECT(sn_session_run((sn_session *)moved, in, info->input_len, logits, info->classes, NULL), SN_ERR_BAD_HANDLE);
    free(moved);

    /* an arena that fits only the smallest stored subnet runs only that */
    sn_subnet_info small;
    size_t smallest = 0;
    uint64_t least = UINT64_MAX;
    for (size_t i = 0; i < info->subnet_count; i++) {
        sn_model_get_subnet(m, i, &small);
        if (small.session_arena_bytes < least) {
            least = small.session_arena_bytes;
            smallest = i;
        }
    }
    sn_model_get_subnet(m, smallest, &small);
    uint8_t *little = aligned_alloc(SN_STORAGE_ALIGN, round_up(small.session_arena_bytes, SN_STORAGE_ALIGN));
    sn_session *s2;
    EXPECT(sn_session_open(m, little, small.session_arena_bytes - 1, &s2), SN_ERR_ARENA_TOO_SMALL);
    EXPECT(sn_session_open(m, little, small.session_arena_bytes, &s2), SN_OK);
    EXPECT(sn_session_get_active(s2, &sel), SN_OK);
    CHECK(sel.arena_bytes <= small.session_arena_bytes);
    int refused = 0;
    for (size_t i = 0; i < info->subnet_count; i++) {
        sn_subnet_info sub;
        sn_model_get_subnet(m, i, &sub);
        sn_status st = sn_session_select_index(s2, i, NULL);
        CHECK(st == (sub.session_arena_bytes <= small.session_arena_bytes ? SN_OK : SN_ERR_ARENA_TOO_SMALL));
        refused += st == SN_ERR_ARENA_TOO_SMALL;
    }
    if (refused) CHECK(last_error_contains(s2, "too small"));
    EXPECT(sn_session_select_index(s2, smallest, NULL), SN_OK);
    EXPECT(sn_session_run(s2, in, info->input_len, logits, info->classes, NULL), SN_OK);
    /* budget selection only considers subnets that fit this arena */
    EXPECT(sn_session_select_battery(s2, 100, 1, &sel), SN_OK);
    CHECK(sel.arena_bytes <= small.session_arena_bytes);

    free(little);
    free(table);
    free(logits);
    free(logits2);
    free(in);
    free(arena);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    size_t len;
    uint8_t *bytes = read_file(argv[1], &len);
    if (!bytes) return 2;
    test_versions_and_statuses();
    test_check_and_load(bytes, len);
    sn_model *m = NULL;
    EXPECT(sn_model_load(storage, sizeof storage, bytes, len, &m), SN_OK);
    if (m) {
        sn_model_info info;
        EXPECT(sn_model_get_info(m, &info), SN_OK);
        test_model(m, &info);
        test_session(m, &info);
        /* a second model in other storage is independent; reloading the first works */
        static _Alignas(SN_STORAGE_ALIGN) uint8_t storage2[SN_MODEL_STORAGE_BYTES];
        sn_model *m2 = NULL;
        EXPECT(sn_model_load(storage2, sizeof storage2, bytes, len, &m2), SN_OK);
        CHECK(m2 != m);
    }
    free(bytes);
    printf("test_capi: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
