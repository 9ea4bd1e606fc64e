// ggml_quantize_ref: quantizes float32 rows to llama.cpp's Q8_0 / Q4_0 blocks with ggml's own code.
//
//   ggml_quantize_ref q8_0|q4_0 ROW_LENGTH IN.f32 OUT.bin
//
// IN.f32 holds little-endian float32 values, rows of ROW_LENGTH (a multiple of 32). OUT.bin gets
// the packed blocks, row after row, exactly as ggml_quantize_chunk() writes them into a GGUF
// tensor (no imatrix, so Q8_0 and Q4_0 go through quantize_row_q8_0_ref / quantize_row_q4_0_ref).
// Built by tests/llama_cpp/install.sh against libggml-base.a from the llama.cpp source that ships
// inside npm node-llama-cpp@3.22.1. Test reference only: it is not part of gemkit.
#include "ggml.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char * fmt, const char * arg) {
    fprintf(stderr, "ggml_quantize_ref: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

int main(int argc, char ** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s q8_0|q4_0 ROW_LENGTH IN.f32 OUT.bin\n", argv[0]);
        return 2;
    }
    enum ggml_type type;
    if (strcmp(argv[1], "q8_0") == 0) {
        type = GGML_TYPE_Q8_0;
    } else if (strcmp(argv[1], "q4_0") == 0) {
        type = GGML_TYPE_Q4_0;
    } else {
        die("unknown type '%s' (expected q8_0 or q4_0)", argv[1]);
        return 2;
    }
    char * end = NULL;
    errno = 0;
    const long long n_per_row = strtoll(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || n_per_row <= 0 || n_per_row % ggml_blck_size(type) != 0) {
        die("ROW_LENGTH '%s' must be a positive multiple of 32", argv[2]);
    }
    {
        const uint32_t probe = 1;
        if (*(const uint8_t *) &probe != 1) {
            die("%s", "big-endian hosts are not supported");
        }
    }

    FILE * in = fopen(argv[3], "rb");
    if (!in) {
        die("cannot open input '%s'", argv[3]);
    }
    if (fseek(in, 0, SEEK_END) != 0) {
        die("cannot seek in '%s'", argv[3]);
    }
    const long long in_bytes = ftell(in);
    rewind(in);
    const long long row_in_bytes = n_per_row * (long long) sizeof(float);
    if (in_bytes < 0 || in_bytes % row_in_bytes != 0) {
        fprintf(stderr, "ggml_quantize_ref: %s has %lld bytes, not a whole number of rows of %lld float32\n",
                argv[3], in_bytes, n_per_row);
        return 1;
    }
    const long long n_rows = in_bytes / row_in_bytes;
    const size_t row_out_bytes = ggml_row_size(type, n_per_row);

    FILE * out = fopen(argv[4], "wb");
    if (!out) {
        die("cannot create output '%s'", argv[4]);
    }

    // Work in chunks of rows so that large tensors need little memory.
    long long chunk_rows = (16LL << 20) / row_in_bytes;
    if (chunk_rows < 1) {
        chunk_rows = 1;
    }
    float * src = malloc((size_t) (chunk_rows * row_in_bytes));
    void * dst = malloc((size_t) chunk_rows * row_out_bytes);
    if (!src || !dst) {
        die("%s", "out of memory");
    }
    for (long long row = 0; row < n_rows; row += chunk_rows) {
        const long long nr = n_rows - row < chunk_rows ? n_rows - row : chunk_rows;
        if (fread(src, (size_t) row_in_bytes, (size_t) nr, in) != (size_t) nr) {
            die("short read from '%s'", argv[3]);
        }
        const size_t written = ggml_quantize_chunk(type, src, dst, 0, nr, n_per_row, NULL);
        if (written != (size_t) nr * row_out_bytes) {
            die("%s", "ggml_quantize_chunk returned an unexpected size");
        }
        if (fwrite(dst, 1, written, out) != written) {
            die("write error on '%s'", argv[4]);
        }
    }
    free(src);
    free(dst);
    fclose(in);
    if (fclose(out) != 0) {
        die("write error on '%s'", argv[4]);
    }
    fprintf(stderr, "ggml_quantize_ref: %s, %lld rows x %lld -> %lld bytes\n", ggml_type_name(type), n_rows,
            n_per_row, n_rows * (long long) row_out_bytes);
    return 0;
}
