package crionode

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

func oddsFiles(t *testing.T, profile string, o OddsOptions) map[string]string {
	t.Helper()
	p, err := Lookup(profile)
	if err != nil {
		t.Fatal(err)
	}
	o.Recorder = filepath.Join(t.TempDir(), "cnirecord")
	if err := os.WriteFile(o.Recorder, []byte("\x7fELF recorder"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := p.OddsFiles(o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		if _, dup := out[f.Path]; dup {
			t.Errorf("%s written twice", f.Path)
		}
		out[f.Path] = string(f.Data)
	}
	return out
}

func TestOddsFilesOnABugEraNode(t *testing.T) {
	files := oddsFiles(t, CRIO117, OddsOptions{ExtraPods: 3, PIDMax: 1024})
	if _, ok := files[crioguest.PIDFloorDone]; !ok {
		t.Error("the PID floor must be stamped done: odds wants the PIDs any node hands out")
	}
	if got := files[PinningDropIn]; !strings.Contains(got, "manage_ns_lifecycle = false") {
		t.Errorf("pinning must be off, spelled out: %q", got)
	}
	if files[crioguest.CNIPluginDir+"/"+crioguest.CNIRecordPlugin] != "\x7fELF recorder" {
		t.Error("the recording plugin is not in CRI-O's plugin dir")
	}
	for _, name := range []string{"odds-1", "odds-2", "odds-3"} {
		m := files["/etc/kubernetes/manifests/"+name+".yaml"]
		if !strings.Contains(m, "name: "+name) || !strings.Contains(m, "image: "+crioguest.PodImage) || strings.Contains(m, "hostNetwork") {
			t.Errorf("%s manifest:\n%s", name, m)
		}
	}
	if got := files["/etc/sysctl.d/50-pid-max.conf"]; !strings.Contains(got, "kernel.pid_max = 1024") {
		t.Errorf("pid_max must survive systemd-sysctl: %q", got)
	}

	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(files[crioguest.PodNetworkConfig]), &list); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p["type"].(string))
	}
	// Last on ADD, first on DEL; the real plugins unchanged before it.
	if strings.Join(types, ",") != "bridge,portmap,loopback,"+crioguest.CNIRecordPlugin || list.CNIVersion != "0.4.0" || list.Name != "pidreuse-pods" {
		t.Errorf("conflist: %s %s %v", list.CNIVersion, list.Name, types)
	}
	rec := list.Plugins[len(list.Plugins)-1]
	if rec["recordFile"] != crioguest.OddsRecordFile || rec["watchFile"] != crioguest.OddsWatchFile {
		t.Errorf("recorder entry: %v", rec)
	}
}

func TestOddsFilesOnCRIO134(t *testing.T) {
	files := oddsFiles(t, CRIO134, OddsOptions{})
	for path := range files {
		if path == crioguest.PIDFloorDone || path == PinningDropIn || strings.HasPrefix(path, "/etc/sysctl.d/") || strings.Contains(path, "/manifests/") {
			t.Errorf("crio-1.34 without pods or pid_max gets %s", path)
		}
	}
	if !strings.Contains(files[crioguest.PodNetworkConfig], crioguest.CNIRecordPlugin) {
		t.Error("crio-1.34's list lacks the recorder")
	}
}

func TestOddsFilesRefusesBadInput(t *testing.T) {
	p, _ := Lookup(CRIO117)
	for _, o := range []OddsOptions{{PIDMax: 300}, {PIDMax: PIDMaxLimit + 1}, {ExtraPods: -1}, {Recorder: "/nonexistent/cnirecord"}} {
		if _, err := p.OddsFiles(o); err == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
	if got := PIDMaxArg(1024); got != "sysctl.kernel.pid_max=1024" {
		t.Error(got)
	}
}
