/* The supernet C API in an app: load one artifact (the whole supernet), calibrate the
 * stored subnets' latencies on this machine, then switch subnets at run time while a
 * simulated battery drains (with a jittering level) and while a latency budget tightens.
 * Each step prints which subnet ran, its prediction for a real test image, its accuracy
 * on a batch of test images and its measured time per image.
 *
 *   example [MODEL] [DATA_DIR] [IMAGES_PER_STEP]
 *
 * Defaults: ../models/fmnist-micro.snet, ../../data/fashion-mnist, 100. */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "common.h"

static _Alignas(SN_STORAGE_ALIGN) uint8_t model_storage[SN_MODEL_STORAGE_BYTES];

/* The clock the library calls during calibration: microseconds, monotonic. */
static uint64_t now_us(void *user) {
    (void)user;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

typedef struct {
    sn_session *session;
    const float *inputs;
    const uint8_t *labels;
    size_t count, input_len;
    float *logits;
    size_t classes;
} runner;

/* Runs the active subnet on the batch; returns accuracy, writes time per image and the
 * first image's prediction. Returns -1 on a library error. */
static double run_batch(const runner *r, double *us_per_image, size_t *first_class) {
    size_t correct = 0;
    uint64_t t0 = now_us(NULL);
    for (size_t i = 0; i < r->count; i++) {
        size_t cls;
        sn_status st = sn_session_run(r->session, r->inputs + i * r->input_len, r->input_len,
                                      r->logits, r->classes, &cls);
        if (st != SN_OK) {
            fprintf(stderr, "error: run: %s\n", sn_status_message(st));
            return -1;
        }
        if (i == 0) *first_class = cls;
        correct += cls == r->labels[i];
    }
    *us_per_image = (double)(now_us(NULL) - t0) / (double)r->count;
    return (double)correct / (double)r->count;
}

static void print_step(const char *what, sn_status st, const sn_selection *sel,
                       const sn_model *model, double acc, double us, size_t cls,
                       unsigned label) {
    sn_subnet_info sub;
    const char *name = "(config)";
    if (sel->index >= 0 && sn_model_get_subnet(model, (size_t)sel->index, &sub) == SN_OK)
        name = sub.name;
    printf("%-22s -> subnet %2d %-11s %5.2f MMACs  val %5.1f%%  budget %6u us  expected %5u us"
           "  measured %7.1f us/img  acc %5.1f%%  image 0: class %zu (label %u)%s%s\n",
           what, sel->index, name, (double)sel->macs / 1e6, 100.0 * sel->accuracy,
           sel->budget_us, sel->latency_us, us, 100.0 * acc, cls, label,
           sel->changed ? "  [switched]" : "", st == SN_OVER_BUDGET ? "  [over budget]" : "");
}

int main(int argc, char **argv) {
    const char *model_path = argc > 1 ? argv[1] : "../models/fmnist-micro.snet";
    const char *data_dir = argc > 2 ? argv[2] : "../../data/fashion-mnist";
    size_t per_step = argc > 3 ? parse_count("IMAGES_PER_STEP", argv[3], 100000) : 100;
    if (per_step == 0) return 2;
    int rc = 1;
    uint8_t *bytes = NULL, *pixels = NULL, *labels = NULL;
    float *inputs = NULL, *logits = NULL;
    void *arena = NULL;
    sn_session *session = NULL;

    if (sn_version() != ((SN_VERSION_MAJOR << 16) | (SN_VERSION_MINOR << 8) | SN_VERSION_PATCH)) {
        fprintf(stderr, "error: header %d.%d.%d but library %s\n", SN_VERSION_MAJOR,
                SN_VERSION_MINOR, SN_VERSION_PATCH, sn_version_string());
        return 1;
    }
    size_t len;
    bytes = read_file(model_path, &len);
    if (!bytes) goto done;
    sn_model *model;
    sn_status st = sn_model_load(model_storage, sizeof model_storage, bytes, len, &model);
    if (st != SN_OK) {
        char why[256];
        sn_model_check(bytes, len, why, sizeof why);
        fprintf(stderr, "error: %s: %s (%s)\n", model_path, sn_status_message(st), why);
        goto done;
    }
    sn_model_info info;
    sn_model_get_info(model, &info);
    printf("libsupernet %s: %s, %zu bytes, format %u.%u; input %ux%ux%u, %u classes; "
           "%zu stored subnets; session arena %zu bytes\n",
           sn_version_string(), model_path, info.model_bytes, info.format_version_major,
           info.format_version_minor, info.in_channels, info.resolution, info.resolution,
           info.classes, info.subnet_count, info.session_arena_bytes);

    uint32_t rows, cols;
    size_t n = read_test_images(data_dir, per_step, &rows, &cols, &pixels, &labels);
    if (n == 0) goto done;
    if (info.in_channels != 1 || rows != info.resolution || cols != info.resolution) {
        fprintf(stderr, "error: images are %ux%u, the model takes %ux%ux%u\n", rows, cols,
                info.in_channels, info.resolution, info.resolution);
        goto done;
    }
    if (n < per_step)
        printf("the test split holds %zu images: using all of them at each step\n", n);
    for (size_t i = 0; i < n; i++) {
        if (labels[i] >= info.classes) {
            fprintf(stderr, "error: %s: test label %u (image %zu) but the model has %u classes\n",
                    data_dir, labels[i], i, info.classes);
            goto done;
        }
    }
    inputs = malloc(n * info.input_len * sizeof *inputs);
    logits = malloc(info.classes * sizeof *logits);
    arena = aligned_alloc(SN_STORAGE_ALIGN, round_up(info.session_arena_bytes, SN_STORAGE_ALIGN));
    if (!inputs || !logits || !arena) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        st = sn_model_preprocess_u8(model, pixels + i * info.input_len, info.input_len,
                                    inputs + i * info.input_len, info.input_len);
        if (st != SN_OK) goto done;
    }
    st = sn_session_open(model, arena, info.session_arena_bytes, &session);
    if (st != SN_OK) {
        fprintf(stderr, "error: session: %s\n", sn_status_message(st));
        goto done;
    }

    /* Time every stored subnet here, so budgets are in this machine's microseconds. */
    st = sn_session_calibrate(session, now_us, NULL, inputs, info.input_len, 9);
    if (st != SN_OK) {
        fprintf(stderr, "error: calibrate: %s\n", sn_status_message(st));
        goto done;
    }
    uint32_t lat[64];
    size_t ns = info.subnet_count < 64 ? info.subnet_count : 64;
    if (ns == info.subnet_count) sn_session_get_latencies(session, lat, ns);
    printf("\nstored subnets (latency calibrated here, median of 9 runs):\n");
    uint32_t fastest = UINT32_MAX, slowest = 0;
    for (size_t i = 0; i < info.subnet_count; i++) {
        sn_subnet_info sub;
        char config[SN_CONFIG_TEXT_BYTES];
        sn_model_get_subnet(model, i, &sub);
        sn_model_get_subnet_config(model, i, config, sizeof config, NULL);
        uint32_t l = i < ns ? lat[i] : sub.latency_us;
        if (l < fastest) fastest = l;
        if (l > slowest) slowest = l;
        printf("  %zu id %u %-11s %6.2f MMACs %7llu params  val %5.1f%%  %5u us  arena %zu\n",
               i, sub.id, sub.name, (double)sub.macs / 1e6, (unsigned long long)sub.params,
               100.0 * sub.accuracy, l, sub.session_arena_bytes);
    }

    runner r = {session, inputs, labels, n, info.input_len, logits, info.classes};
    sn_selection sel;
    double us, acc;
    size_t cls;
    char what[64];
    printf("\nbattery draining (level jitters by 1 point; charger plugged in at the end), %zu test images per step:\n", n);
    for (int level = 100; level >= -10; level -= 10) {
        int charging = level < 0;
        unsigned lv = charging ? 5u : (unsigned)level;
        for (int jitter = 0; jitter < 2; jitter++) {
            unsigned l = lv + (jitter && lv < 100 ? 1u : 0u);
            st = sn_session_select_battery(session, l, charging, &sel);
            if (st != SN_OK && st != SN_OVER_BUDGET) goto fail;
            if ((acc = run_batch(&r, &us, &cls)) < 0) goto done;
            snprintf(what, sizeof what, "battery %3u%%%s", l, charging ? " charging" : "");
            print_step(what, st, &sel, model, acc, us, cls, labels[0]);
        }
    }
    printf("\nlatency budget tightening:\n");
    /* from 20% above the slowest subnet to 20% below the fastest (over budget) */
    const uint32_t hi = slowest + slowest / 5, lo = fastest - fastest / 5;
    for (uint32_t step = 0; step < 8; step++) {
        uint32_t budget = hi - (uint32_t)((uint64_t)(hi - lo) * step / 7);
        st = sn_session_select_latency(session, budget, &sel);
        if (st != SN_OK && st != SN_OVER_BUDGET) goto fail;
        if ((acc = run_batch(&r, &us, &cls)) < 0) goto done;
        snprintf(what, sizeof what, "budget %6u us", budget);
        print_step(what, st, &sel, model, acc, us, cls, labels[0]);
    }
    /* Any config of the space runs too, stored or not (here the last stored one's, as text). */
    char config[SN_CONFIG_TEXT_BYTES];
    size_t config_len;
    sn_model_get_subnet_config(model, info.subnet_count - 1, config, sizeof config, &config_len);
    st = sn_session_select_config(session, config, config_len, &sel);
    if (st != SN_OK) goto fail;
    if ((acc = run_batch(&r, &us, &cls)) < 0) goto done;
    print_step("config text of the last", st, &sel, model, acc, us, cls, labels[0]);
    rc = 0;
    goto done;
fail: {
    char why[256];
    sn_session_get_last_error(session, why, sizeof why);
    fprintf(stderr, "error: %s (%s)\n", sn_status_message(st), why);
}
done:
    free(arena);
    free(logits);
    free(inputs);
    free(pixels);
    free(labels);
    free(bytes);
    return rc;
}
