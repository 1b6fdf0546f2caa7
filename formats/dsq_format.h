/* The .dsq container: byte layout constants and the in-memory view of one tensor entry.
 * formats/FORMAT.md is the specification; this header mirrors it. */
#ifndef DSQ_FORMAT_H
#define DSQ_FORMAT_H

#include <stdint.h>

#define DSQ_MAGIC "DSQMODEL" /* 8 bytes, no terminator on disk */
#define DSQ_VERSION_MAJOR 1  /* a reader refuses files of another major version */
#define DSQ_VERSION_MINOR 1  /* additions only: new type ids, new metadata keys (1: q6) */
#define DSQ_ALIGN 4096       /* every tensor's offset is a multiple of this */
#define DSQ_MAX_DIMS 4

/* Fixed header at offset 0 (DSQ_HEADER_SIZE bytes, little-endian). */
#define DSQ_HEADER_SIZE 128
#define DSQ_HDR_MAGIC 0          /* char[8] */
#define DSQ_HDR_VERSION_MAJOR 8  /* u32 */
#define DSQ_HDR_VERSION_MINOR 12 /* u32 */
#define DSQ_HDR_FILE_SIZE 16     /* u64: the whole file */
#define DSQ_HDR_DATA_OFFSET 24   /* u64 */
#define DSQ_HDR_DATA_SIZE 32     /* u64 */
#define DSQ_HDR_INDEX_OFFSET 40  /* u64 */
#define DSQ_HDR_INDEX_SIZE 48    /* u64: records + string table */
#define DSQ_HDR_TENSOR_COUNT 56  /* u32 */
#define DSQ_HDR_ALIGNMENT 60     /* u32 */
#define DSQ_HDR_META_OFFSET 64   /* u64 */
#define DSQ_HDR_META_SIZE 72     /* u64: bytes stored */
#define DSQ_HDR_META_RAW_SIZE 80 /* u64: bytes of JSON after decompression */
#define DSQ_HDR_META_CODEC 88    /* u32: DSQ_CODEC_* */
#define DSQ_HDR_FLAGS 92         /* u32: 0 in v1 */
#define DSQ_HDR_CHECKSUM 120     /* u64: XXH3-64 of header[0..120) + index + stored metadata */

#define DSQ_CODEC_NONE 0
#define DSQ_CODEC_ZSTD 1

/* Tensor index record (DSQ_RECORD_SIZE bytes each, followed by the string table). */
#define DSQ_RECORD_SIZE 96
#define DSQ_REC_NAME_OFFSET 0 /* u32: into the string table */
#define DSQ_REC_NAME_LEN 4    /* u32: bytes, no terminator */
#define DSQ_REC_TYPE 8        /* u32: enum dsq_type */
#define DSQ_REC_NDIM 12       /* u32: 1..DSQ_MAX_DIMS */
#define DSQ_REC_GROUP 16      /* u32: quantization group size along the row, 0 for floats */
#define DSQ_REC_FLAGS 20      /* u32: 0 in v1 */
#define DSQ_REC_SHAPE 24      /* u64[4]: outermost first; unused dims are 0 */
#define DSQ_REC_OFFSET 56     /* u64: absolute file offset, DSQ_ALIGN-aligned */
#define DSQ_REC_SIZE 64       /* u64: bytes stored */
#define DSQ_REC_CHECKSUM 72   /* u64: XXH3-64 of the stored bytes */
                              /* 80..96 reserved, zero */

#define DSQ_MAX_NAME 256
/* The most metadata JSON a reader parses (a JSON parse takes up to ~20x its text in memory);
 * DeepSeek-V2's, with 102400 tokens and 29000 recipe entries, is about 7 MiB. */
#define DSQ_MAX_META_RAW (64ull << 20)

typedef struct {
    const char *name;
    uint32_t type;
    uint32_t ndim;
    uint64_t shape[DSQ_MAX_DIMS];
    uint32_t group_size;
    uint64_t offset; /* absolute in the file */
    uint64_t size;
    uint64_t checksum;
} dsq_tensor_info;

/* Elements in a tensor (product of its shape). */
uint64_t dsq_tensor_numel(const dsq_tensor_info *t);

/* Rows and row length for storage purposes: the last dim is the row, the rest multiply. */
void dsq_tensor_rows_cols(const dsq_tensor_info *t, uint64_t *rows, uint64_t *cols);

#endif
