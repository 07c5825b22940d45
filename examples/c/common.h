/* Helpers shared by the C example, the C tests and the fuzzer: reading a whole file into
 * an aligned buffer, and reading IDX image and label files (gzip or not, via zlib). The
 * supernet library itself allocates nothing; these programs own every buffer they pass. */
#ifndef SUPERNET_EXAMPLES_COMMON_H
#define SUPERNET_EXAMPLES_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "supernet.h"

/* Rounds n up to a multiple of a (a power of two), as aligned_alloc requires. */
static inline size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* Reads a whole file into a 64-byte aligned buffer; NULL (and a message) on failure. */
static inline uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    uint8_t *buf = aligned_alloc(64, round_up((size_t)n + 1, 64));
    if (!buf) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "error: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Opens DIR/NAME.gz, else DIR/NAME (zlib reads both). */
static inline gzFile open_idx(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = gzopen(path, "rb");
    }
    if (!f) fprintf(stderr, "error: cannot open %s/%s[.gz]\n", dir, name);
    return f;
}

/* Reads up to `want` images (u8, rows x cols each) and their labels from the test split of
 * an IDX dataset directory (MNIST, Fashion-MNIST, ...). Returns the number read, 0 on
 * error; *pixels and *labels are malloc'd. */
static inline size_t read_test_images(const char *dir, size_t want, uint32_t *rows,
                                      uint32_t *cols, uint8_t **pixels, uint8_t **labels) {
    gzFile fi = open_idx(dir, "t10k-images-idx3-ubyte");
    gzFile fl = open_idx(dir, "t10k-labels-idx1-ubyte");
    size_t n = 0;
    uint8_t hi[16], hl[8];
    if (!fi || !fl) goto out;
    if (gzread(fi, hi, 16) != 16 || be32(hi) != 0x803 || gzread(fl, hl, 8) != 8 ||
        be32(hl) != 0x801) {
        fprintf(stderr, "error: %s: not IDX image and label files\n", dir);
        goto out;
    }
    n = be32(hi + 4) < be32(hl + 4) ? be32(hi + 4) : be32(hl + 4);
    if (n > want) n = want;
    *rows = be32(hi + 8);
    *cols = be32(hi + 12);
    size_t img = (size_t)*rows * *cols;
    *pixels = malloc(n * img + 1);
    *labels = malloc(n + 1);
    if (!*pixels || !*labels || gzread(fi, *pixels, (unsigned)(n * img)) != (int)(n * img) ||
        gzread(fl, *labels, (unsigned)n) != (int)n) {
        fprintf(stderr, "error: %s: truncated IDX files\n", dir);
        free(*pixels);
        free(*labels);
        n = 0;
    }
out:
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    return n;
}

#endif
