/* SPDX-License-Identifier: MIT */
/*
 * describe.h - the `viommu describe` subcommand.
 */
#ifndef VIOMMU_CLI_DESCRIBE_H
#define VIOMMU_CLI_DESCRIBE_H

/**
 * viommu_cli_describe - run `viommu describe`.
 * @argc, @argv: the subcommand's arguments, argv[0] being its name.
 *
 * Prints (or writes with -o) the device-tree nodes or the ACPI VIOT
 * table describing the virtio-iommu topology given by the options; see
 * `viommu describe --help`.
 *
 * Returns the process exit status: 0 on success, 1 when the topology or
 * an input file is refused or output fails, 2 for a usage error.
 */
int viommu_cli_describe(int argc, char **argv);

#endif /* VIOMMU_CLI_DESCRIBE_H */
