// SPDX-License-Identifier: MIT
/*
 * describe-main.c - a stand-alone `viommu-describe` program running the
 * `viommu describe` subcommand, so it can be used and tested on its own.
 */
#include "describe.h"

int main(int argc, char **argv)
{
    return viommu_cli_describe(argc, argv);
}
