package cnirecord

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// fakeNode writes a /proc and /sys with PID 1 and a kubelet thread 1234
// (thread group 1200) in the host netns, and a pause process 777 in a pod's
// netns.
func fakeNode(t *testing.T) Proc {
	t.Helper()
	root := t.TempDir()
	p := Proc{ProcRoot: filepath.Join(root, "proc"), SysRoot: filepath.Join(root, "sys")}
	write := func(rel, data string) {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	netns := func(pid, ns string) {
		t.Helper()
		dir := filepath.Join(p.ProcRoot, pid, "ns")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("net:["+ns+"]", filepath.Join(dir, "net")); err != nil {
			t.Fatal(err)
		}
	}
	task := func(pid, comm, tgid, ppid, start, ns, cgroup string) {
		// stat: pid (comm) state ppid pgrp session tty tpgid flags minflt
		// cminflt majflt cmajflt utime stime cutime cstime priority nice
		// num_threads itrealvalue starttime ...
		write("proc/"+pid+"/stat", pid+" ("+comm+") S "+ppid+" 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 "+start+" 0 0")
		write("proc/"+pid+"/comm", comm+"\n")
		write("proc/"+pid+"/status", "Name:\t"+comm+"\nTgid:\t"+tgid+"\nPid:\t"+pid+"\n")
		write("proc/"+pid+"/cgroup", "12:pids:/x\n1:name=systemd:"+cgroup+"\n")
		netns(pid, ns)
	}
	task("1", "systemd", "1", "0", "1", "4026531840", "/init.scope")
	task("1200", "kubelet", "1200", "1", "2150", "4026531840", "/system.slice/kubelet.service")
	task("1234", "kubelet", "1200", "1", "2203", "4026531840", "/system.slice/kubelet.service")
	task("777", "pause) (x", "777", "700", "3000", "4026532500", "/kubepods/besteffort/podabc/123")
	write("proc/sys/kernel/ns_last_pid", "1530\n")
	write("proc/sys/kernel/pid_max", "4194304\n")
	write("proc/sys/kernel/random/boot_id", "b00t\n")
	write("proc/uptime", "41.27 70.01\n")
	write("proc/stat", "cpu 1 2 3\nprocesses 1612\nprocs_running 2\n")
	write("sys/class/net/lo/flags", "0x8\n") // LOOPBACK, not UP
	return p
}

func TestHolder(t *testing.T) {
	p := fakeNode(t)
	got := p.Holder(1234)
	want := agentapi.PIDHolder{PID: 1234, Exists: true, Comm: "kubelet", TGID: 1200, TGIDComm: "kubelet", PPID: 1,
		StartSec: 22.03, NetnsInode: 4026531840, HostNetns: true, Cgroup: "/system.slice/kubelet.service"}
	if got != want {
		t.Errorf("thread 1234:\n got %+v\nwant %+v", got, want)
	}
	pause := p.Holder(777)
	if pause.Comm != "pause) (x" || pause.PPID != 700 || pause.StartSec != 30 || pause.HostNetns {
		t.Errorf("a comm with parentheses, in a pod's netns: %+v", pause)
	}
	if free := p.Holder(4242); free.Exists || free.Comm != "" {
		t.Errorf("a free PID: %+v", free)
	}
}

func TestRealProcess(t *testing.T) {
	h := Host.Holder(os.Getpid())
	if !h.Exists || h.Comm == "" || h.StartSec <= 0 || h.NetnsInode == 0 || h.TGID != os.Getpid() {
		t.Errorf("this test's own process: %+v", h)
	}
}

func TestNetnsPID(t *testing.T) {
	for in, want := range map[string]int{
		"/proc/20689/ns/net": 20689, "": 0, "/var/run/netns/abc": 0, "/proc/self/ns/net": 0, "/proc/12/ns/net/x": 0,
	} {
		if got := NetnsPID(in); got != want {
			t.Errorf("NetnsPID(%q) = %d, want %d", in, got, want)
		}
	}
}

func runPlugin(t *testing.T, p Proc, env Env, conf string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	at := time.Date(2026, 11, 26, 3, 48, 50, 0, time.UTC)
	code := Run(env, strings.NewReader(conf), &out, &errOut, p, func() time.Time { return at })
	return code, out.String(), errOut.String()
}

func readRecords(t *testing.T, path string) []agentapi.CNIRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []agentapi.CNIRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r agentapi.CNIRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// A DEL into the host's netns (the PID is a kubelet thread's now) succeeds
// and records the holder, the counters and the watched PIDs.
func TestDelIntoHostNetnsSucceedsAndRecords(t *testing.T) {
	p := fakeNode(t)
	dir := t.TempDir()
	record, watch := filepath.Join(dir, "rec", "r.jsonl"), filepath.Join(dir, "watch")
	if err := os.WriteFile(watch, []byte("1234 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"0.4.0","name":"pods","type":"pidreuse-record","recordFile":"` + record + `","watchFile":"` + watch + `"}`
	code, out, errOut := runPlugin(t, p, Env{Command: "DEL", ContainerID: "dcb1", Netns: "/proc/1234/ns/net", IfName: "eth0"}, conf)
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("DEL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	recs := readRecords(t, record)
	if len(recs) != 1 {
		t.Fatalf("want 1 record, got %d", len(recs))
	}
	r := recs[0]
	if r.Command != "DEL" || r.ContainerID != "dcb1" || r.BootID != "b00t" || r.NsLastPID != 1530 || r.Forks != 1612 ||
		r.PIDMax != 4194304 || r.UptimeSec != 41.27 || r.HostLoUp || r.Error != "" {
		t.Errorf("record: %+v", r)
	}
	if r.Holder == nil || !r.Holder.HostNetns || r.Holder.Comm != "kubelet" {
		t.Errorf("holder: %+v", r.Holder)
	}
	if len(r.Watched) != 2 || !r.Watched[0].Exists || r.Watched[1].Exists {
		t.Errorf("watched: %+v", r.Watched)
	}
}

// ADD hands the previous plugins' result back byte for byte.
func TestAddPassesPrevResultThrough(t *testing.T) {
	p := fakeNode(t)
	record := filepath.Join(t.TempDir(), "r.jsonl")
	prev := `{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/proc/777/ns/net"}],"ips":[{"version":"4","address":"10.88.0.5/16","interface":0}]}`
	conf := `{"cniVersion":"0.4.0","name":"pods","type":"pidreuse-record","recordFile":"` + record + `","prevResult":` + prev + `}`
	code, out, _ := runPlugin(t, p, Env{Command: "ADD", ContainerID: "c1", Netns: "/proc/777/ns/net", IfName: "eth0"}, conf)
	if code != 0 || out != prev {
		t.Fatalf("ADD: exit %d, stdout %q, want the prevResult", code, out)
	}
	if r := readRecords(t, record)[0]; r.Holder == nil || r.Holder.HostNetns || r.Holder.PID != 777 {
		t.Errorf("ADD record: %+v", r)
	}
}

// A record that cannot be written never fails the runtime's DEL.
func TestDelSucceedsWhenItCannotRecord(t *testing.T) {
	p := fakeNode(t)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"0.4.0","name":"pods","type":"pidreuse-record","recordFile":"` + blocker + `/under/a/file.jsonl","watchFile":"` + blocker + `"}`
	code, out, errOut := runPlugin(t, p, Env{Command: "DEL", ContainerID: "c1"}, conf)
	if code != 0 || out != "" || !strings.Contains(errOut, "pidreuse-record") {
		t.Errorf("DEL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestVersionAndBadCommands(t *testing.T) {
	p := fakeNode(t)
	code, out, _ := runPlugin(t, p, Env{Command: "VERSION"}, "")
	if code != 0 || !strings.Contains(out, `"0.4.0"`) {
		t.Errorf("VERSION: exit %d, %q", code, out)
	}
	code, out, _ = runPlugin(t, p, Env{Command: "FROB"}, `{"cniVersion":"0.4.0"}`)
	if code != 1 || !strings.Contains(out, `"code":4`) {
		t.Errorf("unknown command: exit %d, %q", code, out)
	}
	code, out, _ = runPlugin(t, p, Env{Command: "DEL"}, `{not json`)
	if code != 1 || !strings.Contains(out, `"code":6`) {
		t.Errorf("bad config: exit %d, %q", code, out)
	}
}
