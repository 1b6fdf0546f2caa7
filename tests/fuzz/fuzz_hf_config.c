/* libFuzzer target for config.json: each input is written to a scratch file and loaded with
 * hf_config_load (capped read, JSON parse, every key's type and range); a refusal must say why,
 * and an accepted config must plan its tensors without failing on its own numbers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scratch_input.h"

#include "convert/hf_config.h"
#include "convert/tensor_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_write("fuzz-hf-config", data, size);
    dsq_model_config c;
    char dtype[32];
    dsq_error err = {0};
    if (hf_config_load(&c, dtype, sizeof dtype, path, &err) != DSQ_OK) {
        if (!err.msg[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    planned_tensor *plan = NULL;
    int n_plan = 0;
    if (tensor_plan_build(&c, &plan, &n_plan, &err) == DSQ_OK && n_plan <= 0)
        abort(); /* an accepted config has tensors */
    free(plan);
    return 0;
}
