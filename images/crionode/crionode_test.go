package crionode

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

func render(t *testing.T, name string, force *bool) map[string]string {
	t.Helper()
	p, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.renderRootfs(force)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}

// The image's config files spell out names the harness relies on
// (internal/crioguest): on every profile they must say the same.
func TestConfigsAgreeWithGuestNames(t *testing.T) {
	for _, p := range Profiles() {
		files := render(t, p.Name, nil)
		wants := map[string][]string{
			"/etc/systemd/system/kubelet.service":                     {"--node-ip=" + crioguest.NodeIP},
			"/etc/systemd/system/" + crioguest.SquatUnit:              {crioguest.SquatFile, crioguest.SquatResult},
			"/etc/kubernetes/manifests/" + crioguest.WebPod + ".yaml": {"name: " + crioguest.WebPod, "image: " + crioguest.PodImage},
			"/etc/kubernetes/manifests/" + crioguest.SDNPod + ".yaml": {"name: " + crioguest.SDNPod, "hostNetwork: true", "host: " + crioguest.NodeIP, "port: " + strconv.Itoa(crioguest.SDNPort),
				"initialDelaySeconds: " + strconv.Itoa(int(crioguest.SDNProbeInitialDelay.Seconds())),
				"periodSeconds: " + strconv.Itoa(int(crioguest.SDNProbePeriod.Seconds())), "timeoutSeconds: " + strconv.Itoa(int(crioguest.SDNProbeTimeout.Seconds())),
				"failureThreshold: " + strconv.Itoa(crioguest.SDNProbeFailureThreshold)},
			"/etc/crictl.yaml": {p.CRISocket()},
		}
		if p.IsCRIO() {
			wants["/etc/systemd/system/pidreuse-load-images.service"] = []string{"oci:" + crioguest.PodImageDir + ":v1", "containers-storage:" + crioguest.PodImage, "Before=crio.service", "ConditionPathExists=!" + crioguest.ImagesLoaded}
			wants["/etc/systemd/system/"+crioguest.SquatUnit] = append(wants["/etc/systemd/system/"+crioguest.SquatUnit], "Before=crio.service")
		}
		switch {
		case p.Runtime == RuntimeDocker:
			wants["/etc/kubernetes/kubelet.yaml"] = []string{"containerRuntimeEndpoint: " + crioguest.CRIDockerdSocket, "cgroupDriver: systemd"}
			wants["/etc/systemd/system/pidreuse-load-images.service"] = []string{
				"oci:" + crioguest.PodImageDir + ":v1 docker-daemon:" + crioguest.PodImage,
				"oci:" + crioguest.PauseImageDir + ":v1 docker-daemon:" + crioguest.PauseImage, "Before=cri-docker.service",
			}
			wants["/etc/systemd/system/cri-docker.service"] = []string{"--container-runtime-endpoint " + crioguest.CRIDockerdSocket, "--pod-infra-container-image=" + crioguest.PauseImage, "--cni-bin-dir=" + crioguest.CNIPluginDir}
			wants["/etc/systemd/system/"+crioguest.SquatUnit] = append(wants["/etc/systemd/system/"+crioguest.SquatUnit], "Before=docker.service cri-docker.service")
			wants["/etc/systemd/system/kubelet.service"] = append(wants["/etc/systemd/system/kubelet.service"], "After=docker.service cri-docker.service")
			wants["/etc/docker/daemon.json"] = []string{"native.cgroupdriver=systemd", `"bridge": "none"`}
			for _, f := range []string{"/etc/crio/crio.conf", "/etc/crio/crio.conf.d/10-pidreuse.conf", "/etc/systemd/system/crio.service"} {
				if _, ok := files[f]; ok {
					t.Errorf("%s has CRI-O's %s", p.Name, f)
				}
			}
		case p.Runtime == RuntimeContainerd:
			wants["/etc/kubernetes/kubelet.yaml"] = []string{"containerRuntimeEndpoint: " + crioguest.ContainerdSocket, "cgroupDriver: systemd"}
			// ctr names the layouts' v1 tag <base-name>:v1.
			wants["/etc/systemd/system/pidreuse-load-images.service"] = []string{
				"tar -C " + crioguest.PodImageDir + " -cf - . | ctr -n k8s.io images import --base-name " + strings.TrimSuffix(crioguest.PodImage, ":v1") + " -",
				"tar -C " + crioguest.PauseImageDir + " -cf - . | ctr -n k8s.io images import --base-name " + strings.TrimSuffix(crioguest.PauseImage, ":v1") + " -",
				"Before=kubelet.service",
			}
			wants["/etc/systemd/system/containerd.service.d/10-pidreuse.conf"] = []string{"ExecStart=\nExecStart=/usr/local/lib/pidreuse/containerd"}
			wants["/usr/local/lib/pidreuse/containerd"] = []string{"#!/bin/sh\n", "exec /usr/local/bin/containerd \"$@\"", "exec /usr/bin/containerd \"$@\""}
			wants["/etc/containerd/config.toml"] = []string{`sandbox_image = "` + crioguest.PauseImage + `"`, `bin_dir = "` + crioguest.CNIPluginDir + `"`, "SystemdCgroup = true"}
			wants["/etc/systemd/system/"+crioguest.SquatUnit] = append(wants["/etc/systemd/system/"+crioguest.SquatUnit], "Before=containerd.service")
			for _, f := range []string{"/etc/crio/crio.conf", "/etc/crio/crio.conf.d/10-pidreuse.conf", "/etc/systemd/system/crio.service", "/etc/docker/daemon.json", "/etc/systemd/system/cri-docker.service"} {
				if _, ok := files[f]; ok {
					t.Errorf("%s has %s", p.Name, f)
				}
			}
		case p.Legacy():
			wants["/etc/systemd/system/kubelet.service"] = append(wants["/etc/systemd/system/kubelet.service"], "--container-runtime-endpoint="+crioguest.CRISocket)
			wants["/etc/crio/crio.conf"] = []string{`pause_image = "` + crioguest.PodImage + `"`, `cgroup_manager = "cgroupfs"`}
			wants["/etc/kubernetes/manifests/batch.yaml"] = []string{"name: " + crioguest.SparePod}
			wants["/etc/systemd/system/"+crioguest.PIDFloorUnit] = []string{"echo 20000 > /proc/sys/kernel/ns_last_pid"}
		default:
			wants["/etc/kubernetes/kubelet.yaml"] = []string{"containerRuntimeEndpoint: " + crioguest.CRISocket}
			wants["/etc/crio/crio.conf.d/10-pidreuse.conf"] = []string{`pause_image = "` + crioguest.PodImage + `"`, "drop_infra_ctr = true"}
		}
		if p.IsCRIO() {
			for _, f := range []string{"/etc/docker/daemon.json", "/etc/containerd/config.toml"} {
				if _, ok := files[f]; ok {
					t.Errorf("%s has %s", p.Name, f)
				}
			}
		}
		for file, ws := range wants {
			got, ok := files[file]
			if !ok {
				t.Errorf("%s: no %s", p.Name, file)
				continue
			}
			for _, w := range ws {
				if !strings.Contains(got, w) {
					t.Errorf("%s: %s does not say %q:\n%s", p.Name, file, w, got)
				}
			}
		}
	}
}

// What differs between the profiles is exactly what should.
func TestProfilesRenderTheirOwnConfigs(t *testing.T) {
	cur, v117, v116 := render(t, CRIO134, nil), render(t, CRIO117, nil), render(t, CRIO116, nil)
	if _, ok := cur["/etc/crio/crio.conf"]; ok {
		t.Error("crio-1.34 keeps CRI-O's own crio.conf: its settings are a drop-in")
	}
	for _, f := range []string{"/etc/kubernetes/manifests/batch.yaml", "/etc/systemd/system/" + crioguest.PIDFloorUnit} {
		if _, ok := cur[f]; ok {
			t.Errorf("crio-1.34 has %s", f)
		}
	}
	if !strings.Contains(v117["/etc/crio/crio.conf.d/10-pidreuse.conf"], `pinns_path = "/usr/local/bin/pinns"`) {
		t.Error("crio-1.17 must name pinns: CRI-O 1.17 refuses to start without it")
	}
	if _, ok := v116["/etc/crio/crio.conf.d/10-pidreuse.conf"]; ok {
		t.Error("crio-1.16 reads no drop-ins")
	}
	if !strings.Contains(v116["/etc/cni/net.d/10-pidreuse-pods.conflist"], `"type": "loopback"`) {
		t.Error("crio-1.16 deletes only the configured network: the loopback plugin must be in it")
	}
	if strings.Contains(cur["/etc/cni/net.d/10-pidreuse-pods.conflist"], "loopback") {
		t.Error("crio-1.34's network is as before")
	}
	for _, files := range []map[string]string{v116, v117} {
		if strings.Contains(files["/etc/crio/crio.conf"], "lifecycle") {
			t.Error("the default config leaves namespace pinning at CRI-O's default")
		}
	}
	on := true
	pinned := render(t, CRIO116, &on)
	if !strings.Contains(pinned["/etc/crio/crio.conf"], "manage_network_ns_lifecycle = true") {
		t.Errorf("crio-1.16 pinned:\n%s", pinned["/etc/crio/crio.conf"])
	}
	p, _ := Lookup(CRIO117)
	if got := p.KernelArgs(); len(got) != 1 || got[0] != "systemd.unified_cgroup_hierarchy=0" {
		t.Errorf("crio-1.17 kernel args %v", got)
	}
	if _, err := Lookup("crio-0.1"); err == nil || !strings.Contains(err.Error(), "crio-1.16, crio-1.17, crio-1.34") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestPinningFile(t *testing.T) {
	p, _ := Lookup(CRIO117)
	path, data, err := p.PinningFile(true)
	if err != nil || path != PinningDropIn || !strings.Contains(string(data), "manage_ns_lifecycle = true") {
		t.Errorf("crio-1.17: %s %q %v", path, data, err)
	}
	p, _ = Lookup(CRIO116)
	path, data, err = p.PinningFile(false)
	if err != nil || path != "/etc/crio/crio.conf" || !strings.Contains(string(data), "manage_network_ns_lifecycle = false") {
		t.Errorf("crio-1.16 off: %s %q %v", path, data, err)
	}
	p, _ = Lookup(CRIO134)
	if _, _, err := p.PinningFile(true); err == nil || !strings.Contains(err.Error(), "no namespace pinning switch") {
		t.Errorf("crio-1.34: %v", err)
	}
}
