package bench

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ProcStatus is what /proc/<pid>/status says about a process's memory.
type ProcStatus struct {
	RSSKiB  int64 // VmRSS
	HWMKiB  int64 // VmHWM, the peak RSS
	Threads int
}

// ReadProcStatus reads /proc/<pid>/status.
func ReadProcStatus(pid int) (ProcStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStatus{}, err
	}
	var st ProcStatus
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "VmRSS":
			st.RSSKiB, found = n, true
		case "VmHWM":
			st.HWMKiB = n
		case "Threads":
			st.Threads = int(n)
		}
	}
	if !found {
		return st, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return st, nil
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; it is 100 on
// every Linux architecture Go supports.
const clockTick = 100

// CPUTime is the user+system CPU time a process has used so far.
func CPUTime(pid int) (time.Duration, error) {
	name := "/proc/self/stat"
	if pid > 0 {
		name = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad " + name)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short " + name)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad times in " + name)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// cpuMeter measures the CPU some processes use together between start and
// stop, and how busy the whole machine was (which also counts the kernel's
// loopback network work that is charged to no process).
type cpuMeter struct {
	pids  []int // none: this process
	cpu0  time.Duration
	busy0 time.Duration
	wall0 time.Time
	ok    bool
}

// startCPU starts measuring the processes pids, or this one when none (for
// the server processes, use env.serverCPU).
func startCPU(pids ...int) cpuMeter {
	c, err := cpuTimes(pids)
	busy, _ := machineBusy()
	return cpuMeter{pids: pids, cpu0: c, busy0: busy, wall0: time.Now(), ok: err == nil}
}

// cpuTimes is the CPU time of pids together (this process when none).
func cpuTimes(pids []int) (time.Duration, error) {
	if len(pids) == 0 {
		return CPUTime(0)
	}
	var sum time.Duration
	for _, pid := range pids {
		c, err := CPUTime(pid)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// machineBusy is the CPU time all cores spent not idle (nor waiting for
// I/O) since boot, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, errors.New("bad /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errors.New("bad /proc/stat")
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTick, nil
}

func (m cpuMeter) stop() *ProcessFigures {
	if !m.ok {
		return nil
	}
	c, err := cpuTimes(m.pids)
	if err != nil {
		return nil
	}
	wall := time.Since(m.wall0).Seconds()
	cpu := (c - m.cpu0).Seconds()
	pids := m.pids
	if len(pids) == 0 {
		pids = []int{os.Getpid()}
	}
	pf := &ProcessFigures{PID: pids[0], CPUSecs: round3(cpu), WallSecs: round3(wall)}
	if len(pids) > 1 {
		pf.PIDs = pids
	}
	if wall > 0 {
		pf.Cores = round3(cpu / wall)
		if busy, err := machineBusy(); err == nil && m.busy0 > 0 {
			pf.MachineCores = round3((busy - m.busy0).Seconds() / wall)
		}
	}
	if st, err := sumStatus(pids); err == nil {
		pf.MaxRSS = st.HWMKiB
	}
	return pf
}

// sumStatus adds up the memory figures of pids: RSS and thread counts are
// summed, and so are the peaks (an upper bound of the peak of the sum).
func sumStatus(pids []int) (ProcStatus, error) {
	var sum ProcStatus
	for _, pid := range pids {
		st, err := ReadProcStatus(pid)
		if err != nil {
			return ProcStatus{}, err
		}
		sum.RSSKiB += st.RSSKiB
		sum.HWMKiB += st.HWMKiB
		sum.Threads += st.Threads
	}
	return sum, nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// FindListener returns the pid of the process (of this user) listening on
// the TCP address ap, by matching the socket inode of /proc/net/tcp{,6}
// against each process's descriptors.
func FindListener(ap netip.AddrPort) (int, error) {
	inodes := map[string]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (field 10)
			if len(fs) < 10 || fs[3] != "0A" { // 0A = LISTEN
				continue
			}
			_, portHex, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil || uint16(port) != ap.Port() {
				continue
			}
			inodes["socket:["+fs[9]+"]"] = true
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d", ap.Port())
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, d := range dirs {
		fds, err := os.ReadDir(d)
		if err != nil {
			continue // another user's process
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(d, fd.Name()))
			if err == nil && inodes[link] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("cannot tell which process listens on port %d (pass --server-pid)", ap.Port())
}
