/* A .dsq file opened as a model: the normalized config and every planned tensor found in the
 * file with the shape the config implies. dsq quantize and the runtime both start from this. */
#ifndef DSQ_MODEL_FILE_H
#define DSQ_MODEL_FILE_H

#include "dsq_reader.h"
#include "model_config.h"
#include "tensor_map.h"

typedef struct {
    dsq_file file;
    dsq_model_config config;
    planned_tensor *plan; /* in plan order */
    const dsq_tensor_info **tensors; /* tensors[i] is plan[i] in the file */
    int n_plan;
} model_file;

/* Opens path; fails naming the file and tensor if a tensor is missing, mis-shaped or extra. */
int model_file_open(model_file *m, const char *path, dsq_error *err);
void model_file_close(model_file *m);

#endif
