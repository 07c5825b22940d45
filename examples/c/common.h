/* Helpers shared by the C example, the C tests and the fuzzer: reading a whole file into
 * an aligned buffer, and reading IDX image and label files (gzip or not, via zlib). The
 * supernet library itself allocates nothing; these programs own every buffer they pass. */
#ifndef SUPERNET_EXAMPLES_COMMON_H
#define SUPERNET_EXAMPLES_COMMON_H

/* Each program defines _POSIX_C_SOURCE 200809L before any include (fstat, fileno). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "supernet.h"

/* Rounds n up to a multiple of a (a power of two), as aligned_alloc requires. */
static inline size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* Reads a whole regular file into a 64-byte aligned buffer; NULL (and a message) on failure. */
static inline uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s\n", path);
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: %s is not a regular file\n", path);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = aligned_alloc(64, round_up(n + 1, 64));
    if (!buf) {
        fprintf(stderr, "error: %s: out of memory for %zu bytes\n", path, n);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, n, f) != n) {
        fprintf(stderr, "error: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Parses a positive decimal count (digits only, 1 to max); 0 and a message if it is not one. */
static inline unsigned long parse_count(const char *what, const char *text, unsigned long max) {
    char *end;
    unsigned long v = 0;
    if (text[0] >= '0' && text[0] <= '9') v = strtoul(text, &end, 10);
    if (v == 0 || *end != '\0' || v > max) {
        fprintf(stderr, "error: %s must be a whole number from 1 to %lu, not \"%s\"\n", what, max,
                text);
        return 0;
    }
    return v;
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
 * an IDX dataset directory (MNIST, Fashion-MNIST, ...). Returns the number read, 0 (and a
 * message) on error; on success *pixels and *labels are malloc'd, on error left NULL. */
static inline size_t read_test_images(const char *dir, size_t want, uint32_t *rows,
                                      uint32_t *cols, uint8_t **pixels, uint8_t **labels) {
    gzFile fi = open_idx(dir, "t10k-images-idx3-ubyte");
    gzFile fl = fi ? open_idx(dir, "t10k-labels-idx1-ubyte") : NULL;
    size_t n = 0;
    uint8_t hi[16], hl[8];
    *pixels = NULL;
    *labels = NULL;
    if (!fi || !fl) goto out;
    if (gzread(fi, hi, 16) != 16 || be32(hi) != 0x803 || gzread(fl, hl, 8) != 8 ||
        be32(hl) != 0x801) {
        fprintf(stderr, "error: %s: not IDX image and label files (magic 0x803 and 0x801)\n", dir);
        goto out;
    }
    uint32_t images = be32(hi + 4), count = be32(hl + 4);
    *rows = be32(hi + 8);
    *cols = be32(hi + 12);
    if (images != count) {
        fprintf(stderr, "error: %s: %u test images but %u labels\n", dir, images, count);
        goto out;
    }
    if (images == 0) {
        fprintf(stderr, "error: %s: the test split contains no images\n", dir);
        goto out;
    }
    if (*rows == 0 || *cols == 0 || *rows > 4096 || *cols > 4096) {
        fprintf(stderr, "error: %s: images of %ux%u pixels are not supported\n", dir, *rows,
                *cols);
        goto out;
    }
    size_t img = (size_t)*rows * *cols;
    size_t take = images < want ? images : want;
    if (take * img > (size_t)1 << 30) take = ((size_t)1 << 30) / img; /* gzread counts in int */
    uint8_t *px = malloc(take * img + 1), *lb = malloc(take + 1);
    if (!px || !lb) {
        fprintf(stderr, "error: %s: out of memory for %zu images\n", dir, take);
        free(px);
        free(lb);
        goto out;
    }
    if (gzread(fi, px, (unsigned)(take * img)) != (int)(take * img) ||
        gzread(fl, lb, (unsigned)take) != (int)take) {
        fprintf(stderr, "error: %s: the IDX files are shorter than their headers say (%u images)\n",
                dir, images);
        free(px);
        free(lb);
        goto out;
    }
    *pixels = px;
    *labels = lb;
    n = take;
out:
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    return n;
}

#endif
