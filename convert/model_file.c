/* Opens a .dsq as a model and checks its tensors against the plan derived from its config. */
#include "model_file.h"

#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

int model_file_open(model_file *m, const char *path, dsq_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = dsq_file_open(&m->file, path, err);
    if (rc)
        return rc;
    const char *format = json_string_value(json_object_get(m->file.meta, "format"));
    if (!format || strcmp(format, "dsq") != 0)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: metadata \"format\" is not \"dsq\"", path);
    if (!rc)
        rc = model_config_from_json(&m->config, json_object_get(m->file.meta, "model"), path, err);
    if (!rc)
        rc = chat_template_check(json_object_get(m->file.meta, "chat_template"), path, err);
    /* before the plan is allocated: a hand-made config may promise millions of tensors */
    if (!rc && tensor_plan_count(&m->config) > TENSOR_PLAN_MAX(m->file.n_tensors))
        rc = dsq_fail(err, DSQ_EINPUT, "%s: %u tensors stored, but the model has %llu", path,
                      m->file.n_tensors, (unsigned long long)tensor_plan_count(&m->config));
    if (!rc)
        rc = tensor_plan_build(&m->config, &m->plan, &m->n_plan, err);
    if (!rc && !(m->tensors = calloc((size_t)m->n_plan, sizeof *m->tensors)))
        rc = dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    for (int i = 0; !rc && i < m->n_plan; i++) {
        const planned_tensor *p = &m->plan[i];
        const dsq_tensor_info *t = dsq_file_find(&m->file, p->name);
        if (!t)
            rc = dsq_fail(err, DSQ_EINPUT, "%s: tensor %s is missing", path, p->name);
        else if (t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
                 (p->ndim == 2 && t->shape[1] != p->shape[1]))
            rc = dsq_fail(err, DSQ_EINPUT, "%s: tensor %s has the wrong shape for its config",
                          path, p->name);
        m->tensors[i] = t;
    }
    if (!rc && (uint32_t)m->n_plan != m->file.n_tensors)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: %u tensors stored, but the model has %d", path,
                      m->file.n_tensors, m->n_plan);
    if (rc)
        model_file_close(m);
    return rc;
}

void model_file_close(model_file *m)
{
    dsq_file_close(&m->file);
    free(m->plan);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}
