/*
 * Default paths. A build from a checkout keeps its data in ./var/veil and
 * reads no config file unless told to; the installed binaries (`make
 * install`, `make deb`) are linked with this file compiled again with
 * VEIL_DATA_DIR and VEIL_CONFIG_FILE set to /var/lib/veil and
 * /etc/veil/veild.conf (see the Makefile).
 */
#include "config.h"

#ifndef VEIL_DATA_DIR
#define VEIL_DATA_DIR "./var/veil"
#endif
#ifndef VEIL_CONFIG_FILE
#define VEIL_CONFIG_FILE ""
#endif

const char veil_default_data_dir[] = VEIL_DATA_DIR;
const char veil_default_config[] = VEIL_CONFIG_FILE;
