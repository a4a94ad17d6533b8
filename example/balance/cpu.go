package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 a
// second on every Linux architecture Go supports (it is ABI, not the
// kernel's HZ).
const userHZ = 100

// procCPU returns the CPU time, user and system, that process pid and its
// threads (also those that have exited) have used, from /proc/<pid>/stat:
// 10 ms resolution.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; the fields
	// after it start with the state (field 3): utime and stime are 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// procCPUFine returns the CPU time of process pid's live threads, summed
// from /proc/<pid>/task/*/schedstat: nanosecond resolution, but without the
// threads that have exited (Go seldom ends a thread). It falls back to
// procCPU when the kernel has no schedstat.
func procCPUFine(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return procCPU(pid)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread just ended
			}
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return procCPU(pid)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return procCPU(pid)
		}
		total += n
	}
	return time.Duration(total), nil
}

// cpuSampler reads the CPU time of every pod's server once a second, on
// the load's second boundaries, so that the CPU a pod used in second t of
// the load is sample t+1 minus sample t. It reads procCPUFine: a pod
// uses a few ms of CPU a second, less than /proc/<pid>/stat's 10 ms step
// (the two agree to within that step over a run).
type cpuSampler struct {
	mu      sync.Mutex
	samples []map[string]time.Duration // sample k, at origin + k s: pod name → CPU time
	done    chan struct{}
}

// sampleCPU samples the CPU time of the pods (those with a PID) at origin + 0, 1, … n
// seconds, or until ctx ends. A pod's first sample comes from the first
// boundary after it exists, so its start-up is not counted.
func sampleCPU(ctx context.Context, pods func() []labPod, origin time.Time, n int) *cpuSampler {
	s := &cpuSampler{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		everySecond(ctx, origin, n, func(int) {
			sample := map[string]time.Duration{}
			for _, pod := range pods() {
				if !pod.Running || pod.PID == 0 {
					continue
				}
				if cpu, err := procCPUFine(pod.PID); err == nil {
					sample[pod.Name] = cpu
				}
			}
			s.mu.Lock()
			s.samples = append(s.samples, sample)
			s.mu.Unlock()
		})
	}()
	return s
}

// everySecond calls f(k) at origin + k seconds for k from 0 to n, until ctx
// ends; a call that falls behind is made at once.
func everySecond(ctx context.Context, origin time.Time, n int, f func(k int)) {
	t := time.NewTimer(0)
	defer t.Stop()
	for k := 0; k <= n; k++ {
		t.Reset(time.Until(origin.Add(time.Duration(k) * time.Second)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(k)
	}
}

// perSecond waits for the sampler to end and returns, for each second t of
// the load, the milliseconds of CPU each pod used in it: pods seen at both
// ends of the second only. A nil sampler has none.
func (s *cpuSampler) perSecond() []map[string]float64 {
	if s == nil {
		return nil
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]float64
	for k := 0; k+1 < len(s.samples); k++ {
		sec := map[string]float64{}
		for pod, end := range s.samples[k+1] {
			if begin, ok := s.samples[k][pod]; ok && end >= begin {
				sec[pod] = math.Round(float64(end-begin)/float64(time.Millisecond)*10) / 10
			}
		}
		out = append(out, sec)
	}
	return out
}
