/* plot.c - the SVG loss plot beside a training run, drawn from its metrics CSV (so that a
 * resumed run's plot covers the whole history). */
#include "plot.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define W 720
#define HGT 420
#define ML 70 /* margins */
#define MR 20
#define MT 40
#define MB 50

typedef struct series { double *x, *y; int n, cap; } series;

static int push(series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, sizeof(double) * cap), *ny = nx ? realloc(s->y, sizeof(double) * cap) : NULL;
        if (nx)
            s->x = nx;
        if (!ny)
            return 0;
        s->y = ny, s->cap = cap;
    }
    s->x[s->n] = x, s->y[s->n++] = y;
    return 1;
}

static void polyline(FILE *f, const series *s, double x0, double x1, double y0, double y1, const char *color)
{
    if (s->n == 0)
        return;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%.1f,%.1f ", ML + (s->x[i] - x0) / (x1 - x0) * (W - ML - MR),
                HGT - MB - (s->y[i] - y0) / (y1 - y0) * (HGT - MT - MB));
    fputs("\"/>\n", f);
}

static void axes(FILE *f, double x0, double x1, double y0, double y1)
{
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", ML, MT,
            W - ML - MR, HGT - MT - MB);
    for (int i = 0; i <= 4; i++) {
        double y = y0 + (y1 - y0) * i / 4, py = HGT - MB - (double)i / 4 * (HGT - MT - MB);
        double x = x0 + (x1 - x0) * i / 4, px = ML + (double)i / 4 * (W - ML - MR);
        fprintf(f, "<text x=\"%d\" y=\"%.0f\" font-size=\"12\" text-anchor=\"end\">%.2f</text>\n", ML - 6, py + 4, y);
        fprintf(f, "<text x=\"%.0f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%.0f</text>\n", px, HGT - MB + 18,
                x);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">step</text>\n", (W + ML) / 2,
            HGT - 10);
    fputs("<text x=\"16\" y=\"24\" font-size=\"14\">loss per token: <tspan fill=\"#1f77b4\">training</tspan>, "
          "<tspan fill=\"#d62728\">validation</tspan></text>\n",
          f);
}

static void read_csv(FILE *in, series *tr, series *va)
{
    char line[512], kind[16];
    long step;
    int epoch;
    double loss;
    while (fgets(line, sizeof line, in))
        if (sscanf(line, "%ld,%d,%15[a-z],%lf", &step, &epoch, kind, &loss) == 4)
            push(strcmp(kind, "valid") ? tr : va, (double)step, loss);
}

s2s_status s2s_trainer_plot(const char *prefix)
{
    size_t n = strlen(prefix) + 32;
    char *csv = malloc(n), *svg = malloc(n), *tmp = malloc(n);
    series tr = {0}, va = {0};
    FILE *in = NULL, *out = NULL;
    s2s_status st = S2S_OK;
    int fd = -1;
    if (!csv || !svg || !tmp) {
        st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "the loss plot of %s", prefix);
        goto done;
    }
    snprintf(csv, n, "%s.metrics.csv", prefix);
    snprintf(svg, n, "%s.loss.svg", prefix);
    snprintf(tmp, n, "%s.loss.svg.tmp-XXXXXX", prefix);
    if (!(in = fopen(csv, "r")))
        goto done; /* nothing reported yet: nothing to plot */
    read_csv(in, &tr, &va);
    double x0 = 0, x1 = 1, y0 = 1e300, y1 = -1e300;
    const series *all[2] = {&tr, &va};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < all[k]->n; i++) {
            x1 = all[k]->x[i] > x1 ? all[k]->x[i] : x1;
            y0 = all[k]->y[i] < y0 ? all[k]->y[i] : y0;
            y1 = all[k]->y[i] > y1 ? all[k]->y[i] : y1;
        }
    if (y0 > y1)
        goto done;
    if ((fd = mkstemp(tmp)) >= 0)
        fchmod(fd, 0644); /* as fopen would (mkstemp makes 0600) */
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        st = S2S_FAIL(S2S_ERR_IO, "cannot write the loss plot beside %s: %s", svg, strerror(errno));
        goto done;
    }
    fd = -1;
    if (y1 - y0 < 1e-6)
        y1 = y0 + 1;
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, HGT);
    axes(out, x0, x1, y0, y1);
    polyline(out, &tr, x0, x1, y0, y1, "#1f77b4");
    polyline(out, &va, x0, x1, y0, y1, "#d62728");
    fputs("</svg>\n", out);
    errno = 0;
    int bad = ferror(out);
    bad |= fclose(out) != 0;
    out = NULL;
    if (bad || rename(tmp, svg) != 0)
        st = S2S_FAIL(S2S_ERR_IO, "cannot write %s: %s", svg, errno ? strerror(errno) : "write error");
done:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (fd >= 0)
        close(fd);
    if (st != S2S_OK && tmp)
        unlink(tmp);
    free(csv), free(svg), free(tmp), free(tr.x), free(tr.y), free(va.x), free(va.y);
    return st;
}

/* Writes s with XML's five special characters escaped. */
static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(*s, f);
        }
    }
}

S2S_API s2s_status s2s_attention_svg(const char *path, const char *const *src, int n_src, const char *const *out,
                                     int n_out, const float *att)
{
    if (!path || n_src < 1 || n_out < 0 || (n_out && (!out || !att)) || !src)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_attention_svg: path, pieces and weights are needed");
    FILE *f = fopen(path, "w");
    if (!f)
        return S2S_FAIL(S2S_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    const int cell = 28, left = 160, top = 140;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"13\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            left + cell * n_src + 20, top + cell * n_out + 20);
    for (int j = 0; j < n_src; j++) {
        fprintf(f, "<text transform=\"translate(%d,%d) rotate(-60)\">", left + j * cell + cell / 2, top - 6);
        xml_text(f, src[j]);
        fputs("</text>\n", f);
    }
    for (int i = 0; i < n_out; i++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, top + i * cell + cell / 2 + 5);
        xml_text(f, out[i]);
        fputs("</text>\n", f);
        for (int j = 0; j < n_src; j++) {
            float a = att[(size_t)i * n_src + j];
            a = a < 0 ? 0 : a > 1 ? 1 : a;
            int shade = (int)(255 * (1 - a));
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"#ddd\">"
                       "<title>%.3f</title></rect>\n",
                    left + j * cell, top + i * cell, cell, cell, shade, shade, a);
        }
    }
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        return S2S_FAIL(S2S_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return S2S_OK;
}
