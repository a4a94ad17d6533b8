// Package cputime reads the CPU time the process has used, for WithORCA's
// cpu_utilization and for the benchmarks and labs that report CPU per call:
// on a loaded machine it varies less than wall-clock time.
package cputime
