/* swscale's time per 1920x1080 frame for the conversions streamlib's `Convert` does, one thread
 * (sws_scale with no slice threads: the `threads` option defaults to 1), BT.709 limited range
 * on the YUV side. Built and run by convert_peers.sh:
 *   swscale_convert FRAMES REPEATS FLAGS BUFFERS
 * FLAGS: bilinear | fast_bilinear | bicubic | point; BUFFERS: how many output pictures the
 * frames rotate through (streamlib's `Convert` writes into a pool of 4, in turn).
 * prints "<from>_to_<to> <median CPU ms per frame over REPEATS runs of FRAMES frames>". */
#include <libavutil/mem.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 1920
#define H 1080

/* This thread's CPU time: on a machine shared with other work, steadier than wall time. */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Plane pointers and strides of a W x H picture in `fmt` inside `buf`. */
static void planes(enum AVPixelFormat fmt, uint8_t *buf, uint8_t *p[4], int s[4]) {
    memset(p, 0, 4 * sizeof(p[0]));
    memset(s, 0, 4 * sizeof(s[0]));
    p[0] = buf;
    switch (fmt) {
    case AV_PIX_FMT_RGBA: s[0] = W * 4; break;
    case AV_PIX_FMT_UYVY422: s[0] = W * 2; break;
    case AV_PIX_FMT_YUV420P:
        s[0] = W; s[1] = s[2] = W / 2;
        p[1] = buf + W * H; p[2] = p[1] + W / 2 * H / 2;
        break;
    case AV_PIX_FMT_NV12:
        s[0] = s[1] = W;
        p[1] = buf + W * H;
        break;
    default: abort();
    }
}

int main(int argc, char **argv) {
    int frames = argc > 1 ? atoi(argv[1]) : 100;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    const char *flag_name = argc > 3 ? argv[3] : "bilinear";
    int buffers = argc > 4 ? atoi(argv[4]) : 1;
    if (buffers < 1 || buffers > 8) buffers = 1;
    int flags = !strcmp(flag_name, "fast_bilinear") ? SWS_FAST_BILINEAR
              : !strcmp(flag_name, "bicubic")       ? SWS_BICUBIC
              : !strcmp(flag_name, "point")         ? SWS_POINT
                                                    : SWS_BILINEAR;
    struct { const char *name; enum AVPixelFormat from, to; } cases[] = {
        {"rgba8_to_uyvy", AV_PIX_FMT_RGBA, AV_PIX_FMT_UYVY422},
        {"rgba8_to_i420", AV_PIX_FMT_RGBA, AV_PIX_FMT_YUV420P},
        {"uyvy_to_rgba8", AV_PIX_FMT_UYVY422, AV_PIX_FMT_RGBA},
        {"i420_to_rgba8", AV_PIX_FMT_YUV420P, AV_PIX_FMT_RGBA},
        {"nv12_to_rgba8", AV_PIX_FMT_NV12, AV_PIX_FMT_RGBA},
    };
    uint8_t *src = av_malloc(W * H * 4), *dst[8];
    for (int b = 0; b < buffers; b++) {
        dst[b] = av_malloc(W * H * 4);
        memset(dst[b], 0, W * H * 4);
    }
    for (int i = 0; i < W * H * 4; i++) src[i] = (uint8_t)(i * 31 % 256); /* as the criterion bench */
    double *t = calloc(repeats, sizeof(double));
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct SwsContext *ctx =
            sws_getContext(W, H, cases[c].from, W, H, cases[c].to, flags, NULL, NULL, NULL);
        if (!ctx) { fprintf(stderr, "%s: no context\n", cases[c].name); return 1; }
        /* BT.709 both ways; RGB full range, YUV limited range. */
        const int *bt709 = sws_getCoefficients(SWS_CS_ITU709);
        int src_full = cases[c].from == AV_PIX_FMT_RGBA, dst_full = cases[c].to == AV_PIX_FMT_RGBA;
        sws_setColorspaceDetails(ctx, bt709, src_full, bt709, dst_full, 0, 1 << 16, 1 << 16);
        uint8_t *sp[4], *dp[8][4];
        int ss[4], ds[4];
        planes(cases[c].from, src, sp, ss);
        for (int b = 0; b < buffers; b++) planes(cases[c].to, dst[b], dp[b], ds);
        for (int i = 0; i < 10; i++)
            sws_scale(ctx, (const uint8_t *const *)sp, ss, 0, H, dp[i % buffers], ds);
        for (int r = 0; r < repeats; r++) {
            double start = now_ms();
            for (int i = 0; i < frames; i++)
                sws_scale(ctx, (const uint8_t *const *)sp, ss, 0, H, dp[i % buffers], ds);
            t[r] = (now_ms() - start) / frames;
        }
        qsort(t, repeats, sizeof(double), cmp);
        printf("%s %.3f\n", cases[c].name, t[repeats / 2]);
        sws_freeContext(ctx);
    }
    av_free(src);
    for (int b = 0; b < buffers; b++) av_free(dst[b]);
    free(t);
    return 0;
}
