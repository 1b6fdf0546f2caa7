/* The dsq tool version, recorded in every file's provenance. */
#ifndef DSQ_VERSION_H
#define DSQ_VERSION_H
#define DSQ_TOOL_VERSION "0.1.0"
#endif
