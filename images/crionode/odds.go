package crionode

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/template"

	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// What `pidreuse odds` lays over a profile's image, through the run's
// layer (no image rebuild): the node as it is, minus what makes the forced
// scenarios exact (the PID floor), plus K ordinary pods and the recording
// CNI plugin.

//go:embed odds/pod.yaml.tmpl
var oddsPodTemplate string

// PIDMaxMin and PIDMaxLimit bound kernel.pid_max on the guest (x86-64,
// 2 vCPUs): RESERVED_PIDS+1 and PID_MAX_LIMIT.
const (
	PIDMaxMin   = 301
	PIDMaxLimit = 4194304
)

// OddsOptions shapes an odds node.
type OddsOptions struct {
	// ExtraPods is how many ordinary static pods to add (odds-1 … odds-K).
	ExtraPods int
	// PIDMax, when set, is the guest's kernel.pid_max (see PIDMaxArg).
	PIDMax int
	// Recorder is the host path of cmd/cnirecord (static).
	Recorder string
}

// OddsPods names the extra pods' containers (and pods).
func OddsPods(k int) []string {
	var names []string
	for i := 1; i <= k; i++ {
		names = append(names, crioguest.OddsPodPrefix+strconv.Itoa(i))
	}
	return names
}

// PIDMaxArg is the kernel command line argument that sets pid_max before
// init runs (Linux >= 5.8 applies sysctl.* arguments; the guest runs 6.1).
func PIDMaxArg(pidMax int) string { return "sysctl.kernel.pid_max=" + strconv.Itoa(pidMax) }

// OddsFiles returns the files the run's layer writes into the guest at each
// boot, before CRI-O and kubelet start:
//   - the PID floor's stamp, so the floor never runs and pods get the low
//     PIDs any node hands out (bug-era profiles);
//   - CRI-O's pinning switch off, spelled out (its default on 1.16/1.17;
//     1.34 has no switch and always pins);
//   - the pod network's list with the recording plugin appended: libcni
//     runs it last on ADD and first on DEL;
//   - the recording plugin in CRI-O's plugin dir;
//   - K static pod manifests;
//   - with PIDMax, /etc/sysctl.d/50-pid-max.conf, which masks systemd's
//     /usr/lib/sysctl.d/50-pid-max.conf (kernel.pid_max = 4194304): without
//     it systemd-sysctl would undo the kernel argument early in every boot.
func (p Profile) OddsFiles(o OddsOptions) ([]layer.File, error) {
	if o.ExtraPods < 0 {
		return nil, fmt.Errorf("odds: %d extra pods", o.ExtraPods)
	}
	if o.PIDMax != 0 && (o.PIDMax < PIDMaxMin || o.PIDMax > PIDMaxLimit) {
		return nil, fmt.Errorf("odds: pid_max %d: the kernel takes %d to %d", o.PIDMax, PIDMaxMin, PIDMaxLimit)
	}
	recorder, err := os.ReadFile(o.Recorder)
	if err != nil {
		return nil, fmt.Errorf("odds: the recording CNI plugin: %w (run `make build`)", err)
	}
	conflist, err := p.oddsConflist()
	if err != nil {
		return nil, err
	}
	files := []layer.File{
		{Path: crioguest.PodNetworkConfig, Data: conflist, Mode: 0o644},
		{Path: crioguest.CNIPluginDir + "/" + crioguest.CNIRecordPlugin, Data: recorder, Mode: 0o755},
	}
	if p.PIDFloor > 0 {
		files = append(files, layer.File{Path: crioguest.PIDFloorDone, Data: []byte("pidreuse odds: natural PIDs, no floor\n"), Mode: 0o644})
	}
	if p.PinSwitch != "" {
		path, data, err := p.PinningFile(false)
		if err != nil {
			return nil, err
		}
		files = append(files, layer.File{Path: path, Data: data, Mode: 0o644})
	}
	t, err := template.New("pod").Option("missingkey=error").Parse(oddsPodTemplate)
	if err != nil {
		return nil, fmt.Errorf("odds: pod template: %w", err)
	}
	for _, name := range OddsPods(o.ExtraPods) {
		var b bytes.Buffer
		if err := t.Execute(&b, map[string]any{"Name": name, "Count": o.ExtraPods, "PodImage": crioguest.PodImage}); err != nil {
			return nil, fmt.Errorf("odds: pod %s: %w", name, err)
		}
		files = append(files, layer.File{Path: "/etc/kubernetes/manifests/" + name + ".yaml", Data: b.Bytes(), Mode: 0o644})
	}
	if o.PIDMax != 0 {
		data := fmt.Sprintf("# Written by pidreuse odds for this run (--pid-max): masks systemd's 50-pid-max.conf.\nkernel.pid_max = %d\n", o.PIDMax)
		files = append(files, layer.File{Path: "/etc/sysctl.d/50-pid-max.conf", Data: []byte(data), Mode: 0o644})
	}
	return files, nil
}

// oddsConflist is the profile's pod network list with the recording plugin
// last.
func (p Profile) oddsConflist() ([]byte, error) {
	files, err := p.renderRootfs(nil)
	if err != nil {
		return nil, fmt.Errorf("odds: %w", err)
	}
	raw, ok := files[crioguest.PodNetworkConfig]
	if !ok {
		return nil, fmt.Errorf("odds: profile %s has no %s", p.Name, crioguest.PodNetworkConfig)
	}
	var list map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("odds: %s: %w", crioguest.PodNetworkConfig, err)
	}
	plugins, ok := list["plugins"].([]any)
	if !ok {
		return nil, fmt.Errorf("odds: %s has no plugins list", crioguest.PodNetworkConfig)
	}
	list["plugins"] = append(plugins, map[string]any{
		"type": crioguest.CNIRecordPlugin, "recordFile": crioguest.OddsRecordFile, "watchFile": crioguest.OddsWatchFile,
	})
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("odds: %w", err)
	}
	return append(out, '\n'), nil
}
