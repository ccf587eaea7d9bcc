#include <stdio.h>

#include "proxy/cli.h"
#include "proxy/default_config.h"

int cli_config_load(const char *path, struct config **out, struct config_diags *diags)
{
    return path != NULL ? config_load_file(path, out, diags)
                        : config_load_string("<default>", default_config_text, NULL, out, diags);
}

struct config *cli_load_config(const char *path)
{
    struct config_diags diags;
    struct config *cfg = NULL;
    int err = cli_config_load(path, &cfg, &diags);
    for (size_t i = 0; i < diags.count; i++)
        fprintf(stderr, "%s\n", diags.items[i].text);
    if (diags.dropped > 0)
        fprintf(stderr, "(%zu more problem(s) not shown)\n", diags.dropped);
    if (err != 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}
