/* Checkpoint folders: model.safetensors.index.json and its shards, a lone model.safetensors, or
 * every *.safetensors file in the folder. Defines st_open_dir. */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json_error.h"
#include "input_file.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static char *join_path(const char *dir, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Loads the index and checks its shape: an object with a weight_map of name -> shard file name,
 * each a plain name in the same folder (no path can lead outside it). */
static int load_index(const char *index_path, json_t **root, json_t **weight_map, dsq_error *err)
{
    json_error_t je;
    char *text;
    size_t len;
    int rc = input_read_all(index_path, INPUT_CAP_INDEX, "an index", 0, &text, &len, err);
    if (rc)
        return rc;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!*root && dsq_json_out_of_memory(&je))
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory reading the JSON", index_path);
    if (!*root && json_error_code(&je) == json_error_duplicate_key)
        return dsq_fail(err, DSQ_EINPUT, "%s: a key appears twice, at line %d, column %d: %s",
                        index_path, je.line, je.column, je.text);
    if (!*root)
        return dsq_fail(err, DSQ_EINPUT, "%s: JSON is malformed at line %d, column %d: %s",
                        index_path, je.line, je.column, je.text);
    if (!json_is_object(*root))
        return dsq_fail(err, DSQ_EINPUT, "%s: must be a JSON object", index_path);
    json_t *meta = json_object_get(*root, "metadata");
    if (meta && !json_is_object(meta))
        return dsq_fail(err, DSQ_EINPUT, "%s: \"metadata\" must be an object", index_path);
    *weight_map = json_object_get(*root, "weight_map");
    if (!json_is_object(*weight_map))
        return dsq_fail(err, DSQ_EINPUT, "%s: missing \"weight_map\" object", index_path);

    const char *name;
    json_t *v;
    json_object_foreach(*weight_map, name, v)
    {
        if (!json_is_string(v))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: weight_map entry \"%s\" must be a shard file name string",
                            index_path, name);
        const char *file = json_string_value(v);
        if (!file[0] || strchr(file, '/') || strstr(file, ".."))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: weight_map entry \"%s\": shard \"%s\" must be a plain file name "
                            "in the index's folder",
                            index_path, name, file);
    }
    return 0;
}

/* The distinct shard names of weight_map, sorted; the strings belong to weight_map. */
static int shard_names(const char *index_path, json_t *weight_map, const char ***names, int *n,
                       dsq_error *err)
{
    size_t total = json_object_size(weight_map);
    *names = malloc((total ? total : 1) * sizeof **names);
    if (!*names)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", index_path);
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(weight_map, key, v)
    {
        (*names)[k++] = json_string_value(v);
    }
    qsort(*names, k, sizeof **names, cmp_str);
    int distinct = 0;
    for (size_t i = 0; i < k; i++)
        if (distinct == 0 || strcmp((*names)[distinct - 1], (*names)[i]) != 0)
            (*names)[distinct++] = (*names)[i];
    *n = distinct;
    return 0;
}

static int open_shards(st_checkpoint *ck, const char *dir, const char *index_path,
                       const char **names, int n, dsq_error *err)
{
    for (int i = 0; i < n; i++) {
        char *path = join_path(dir, names[i]);
        if (!path)
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", index_path);
        int rc = 0;
        if (!file_exists(path))
            rc = dsq_fail(err, DSQ_EINPUT, "%s: cannot open shard named by %s: %s", path,
                          index_path, strerror(errno));
        else
            rc = st_add_shard(ck, path, err);
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every tensor of every shard must be listed in weight_map under that shard. */
static int check_shards_listed(const st_checkpoint *ck, const char *index_path, json_t *weight_map,
                               dsq_error *err)
{
    for (int i = 0; i < ck->n_tensors; i++) {
        const st_tensor *t = &ck->tensors[i];
        const char *shard = ck->shards[t->shard].path;
        const char *listed = json_string_value(json_object_get(weight_map, t->name));
        if (!listed)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s contains tensor \"%s\", but %s does not list it in weight_map",
                            shard, t->name, index_path);
        if (strcmp(listed, base_name(shard)) != 0)
            return dsq_fail(err, DSQ_EINPUT, "%s contains tensor \"%s\", but %s says it is in %s",
                            shard, t->name, index_path, listed);
    }
    return 0;
}

/* Every tensor weight_map lists must be in the shard it names (needs the name index). */
static int check_listed_present(const st_checkpoint *ck, const char *index_path, json_t *weight_map,
                                dsq_error *err)
{
    const char *name;
    json_t *v;
    json_object_foreach(weight_map, name, v)
    {
        const char *file = json_string_value(v);
        const st_tensor *t = st_find(ck, name);
        if (!t || strcmp(base_name(ck->shards[t->shard].path), file) != 0)
            return dsq_fail(err, DSQ_EINPUT, "%s says \"%s\" is in %s, but %s does not contain it",
                            index_path, name, file, file);
    }
    return 0;
}

static int open_index(st_checkpoint *ck, const char *dir, const char *index_path, dsq_error *err)
{
    json_t *root = NULL, *weight_map = NULL;
    const char **names = NULL;
    int n = 0;
    int rc = load_index(index_path, &root, &weight_map, err);
    if (!rc)
        rc = shard_names(index_path, weight_map, &names, &n, err);
    if (!rc)
        rc = open_shards(ck, dir, index_path, names, n, err);
    if (!rc)
        rc = check_shards_listed(ck, index_path, weight_map, err);
    if (!rc)
        rc = st_finish(ck, err);
    if (!rc)
        rc = check_listed_present(ck, index_path, weight_map, err);
    free(names);
    json_decref(root);
    return rc;
}

/* Collects the folder's *.safetensors names, sorted; notes whether pytorch_model*.bin exist. */
static int list_dir(const char *dir, char ***names, int *n, int *has_bin, dsq_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return dsq_fail(err, DSQ_EINPUT, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = 0, cap = 0;
    for (;;) {
        errno = 0; /* readdir returns NULL both at the end and on error */
        struct dirent *e = readdir(d);
        if (!e)
            break;
        const char *name = e->d_name;
        if (strncmp(name, "pytorch_model", 13) == 0 && has_suffix(name, ".bin"))
            *has_bin = 1;
        /* Hidden files (macOS "._x" forks, editor temporaries) are not shards. */
        if (name[0] == '.' || !has_suffix(name, ".safetensors"))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup(name))) {
            rc = dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", dir);
            break;
        }
        (*n)++;
    }
    if (!rc && errno)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: cannot list folder: %s", dir, strerror(errno));
    closedir(d);
    if (!rc && *n > 0)
        qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return rc;
}

/* No index and no model.safetensors: every *.safetensors in the folder, in name order. */
static int open_listing(st_checkpoint *ck, const char *dir, dsq_error *err)
{
    char **names = NULL;
    int n = 0, has_bin = 0;
    int rc = list_dir(dir, &names, &n, &has_bin, err);
    if (!rc && n == 0)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: no *.safetensors files in this folder%s", dir,
                      has_bin ? " (it has pytorch_model*.bin files: PyTorch .bin checkpoints are "
                                "not supported; convert them to safetensors first)"
                              : "");
    for (int i = 0; !rc && i < n; i++) {
        char *path = join_path(dir, names[i]);
        rc = path ? st_add_shard(ck, path, err)
                  : dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", dir);
        free(path);
    }
    if (!rc)
        rc = st_finish(ck, err);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int open_single(st_checkpoint *ck, const char *path, dsq_error *err)
{
    int rc = st_add_shard(ck, path, err);
    return rc ? rc : st_finish(ck, err);
}

int st_open_dir(st_checkpoint *ck, const char *dir, dsq_error *err)
{
    memset(ck, 0, sizeof *ck);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: cannot open folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return dsq_fail(err, DSQ_EINPUT, "%s: not a folder", dir);

    char *index_path = join_path(dir, INDEX_NAME);
    char *single_path = join_path(dir, SINGLE_NAME);
    int rc;
    if (!index_path || !single_path)
        rc = dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", dir);
    else if (file_exists(index_path))
        rc = open_index(ck, dir, index_path, err);
    else if (file_exists(single_path))
        rc = open_single(ck, single_path, err);
    else
        rc = open_listing(ck, dir, err);
    free(index_path);
    free(single_path);
    if (rc)
        st_close(ck);
    return rc;
}
