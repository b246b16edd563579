// Package crionode turns the node image into a Kubernetes node of one
// profile (profile.go): CRI-O, kubelet, pinns and crictl built from
// source, Debian's conmon and runc, our CNI network, the static pods and
// their image, loaded into CRI-O's storage at first boot. The files under
// rootfs/ are laid into the image; those ending in .tmpl are rendered for
// the profile first (one that renders empty is left out).
package crionode

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/ociimage"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

//go:embed rootfs
var rootfs embed.FS

// Components are host paths of the binaries built from source; those the
// profile has none of are empty.
type Components struct {
	Kubelet, CRIO, Pinns, Crictl, CRIDockerd string
	// PodServer is cmd/podserver, built static: the pods' only binary.
	PodServer string
	// Loopback is the profile's loopback plugin (Profile.Loopback), or "".
	Loopback string
	// NodeCRI is cmd/nodecri, which reads CRI-O for the harness.
	NodeCRI string
}

// Packages are the Debian packages the node adds. On CRI-O nodes conmon
// 2.1.6 and runc 1.1.5 are what every CRI-O of the profiles runs with
// here; on Docker nodes docker.io 20.10 brings its containerd and runc.
// skopeo loads the pod images at first boot.
func (p Profile) Packages() []string {
	switch p.Runtime {
	case RuntimeContainerd:
		// Debian's containerd depends on its runc.
		return []string{"containerd", "containernetworking-plugins"}
	case RuntimeDocker:
		// apparmor: Docker refuses to start a container where the kernel
		// has AppArmor on and apparmor_parser is missing (docker.io only
		// recommends it).
		return []string{"docker.io", "apparmor", "skopeo", "containernetworking-plugins"}
	}
	return []string{"conmon", "runc", "libseccomp2", "skopeo", "containernetworking-plugins"}
}

// journalBothBoots is a script printing a unit's journal of the boot
// before (if any) and of this one.
func journalBothBoots(unit string) string {
	return fmt.Sprintf("journalctl -b -1 -u %[1]s --no-pager -o short-precise; echo; journalctl -b 0 -u %[1]s --no-pager -o short-precise", unit)
}

// Artifacts are what a failed run keeps from the node besides what every
// VM gives (console, journals, agent state): scripts by output file name,
// for vm.Options.Artifacts.
func (p Profile) Artifacts() map[string]string {
	a := map[string]string{
		"kubelet.log": journalBothBoots("kubelet"),
		"cri.json":    "nodecri version; nodecri pods; nodecri containers",
		"gates.txt":   fmt.Sprintf("for d in %s %s; do ls -l $d; for f in $d/*; do echo \"== $f\"; cat $f; done; done 2>&1", crioguest.GateDir, crioguest.RuncGateDir),
	}
	units := "kubelet pidreuse-squat pidreuse-load-images"
	switch p.Runtime {
	case RuntimeDocker:
		a["docker.log"] = journalBothBoots(crioguest.DockerUnit)
		a["cri-dockerd.log"] = journalBothBoots(crioguest.CRIDockerdUnit)
		a["docker-ps.txt"] = "docker ps -a --no-trunc 2>&1; docker info 2>&1"
		units += " docker cri-docker"
	case RuntimeContainerd:
		a["containerd.log"] = journalBothBoots(crioguest.ContainerdUnit)
		a["ctr.txt"] = "ctr -n k8s.io containers ls 2>&1; ctr -n k8s.io tasks ls 2>&1; ctr -n k8s.io images ls 2>&1"
		units += " containerd"
	default:
		a["crio.log"] = journalBothBoots(crioguest.CRIOUnit)
		a["crio-config.toml"] = "crio config 2>&1"
		units += " crio pidreuse-pid-floor"
	}
	a["units.txt"] = "systemctl --no-pager status " + units
	return a
}

// units are enabled in the image (docker.service is Debian's, enabled by
// its package).
func (p Profile) units() []string {
	u := []string{"kubelet.service", "pidreuse-load-images.service", crioguest.SquatUnit}
	switch p.Runtime {
	case RuntimeDocker:
		u = append(u, "cri-docker.service")
	case RuntimeContainerd:
		// containerd.service is Debian's, enabled by its package.
	default:
		u = append(u, "crio.service")
	}
	if p.PIDFloor > 0 {
		u = append(u, crioguest.PIDFloorUnit)
	}
	return u
}

// templateData is what rootfs/**/*.tmpl see: the profile and the guest's
// names.
type templateData struct {
	Profile
	Legacy bool
	// CRIO, Docker and Containerd say which runtime the node runs.
	CRIO, Docker, Containerd bool
	// RuntimeUnits are the runtime's services, space-separated, for
	// Before=/After= lines.
	RuntimeUnits string
	// ForcePinning and PinnedNetns render a run's forced pinning setting.
	ForcePinning bool
	PinnedNetns  bool
	CRISocket    string
	// CRISocketPath is CRISocket's file.
	CRISocketPath string
	NodeIP        string
	PodImage      string
	PauseImage    string
	SparePod      string
	// PodImageDir and PauseImageDir are the OCI layouts in the image.
	PodImageDir, PauseImageDir string
}

func (p Profile) templateData(force *bool) templateData {
	return templateData{
		Profile: p, Legacy: p.Legacy(), ForcePinning: force != nil, PinnedNetns: force != nil && *force,
		CRIO: p.IsCRIO(), Docker: p.Runtime == RuntimeDocker, Containerd: p.Runtime == RuntimeContainerd, RuntimeUnits: unitList(p.RuntimeUnits()),
		CRISocket: p.CRISocket(), CRISocketPath: strings.TrimPrefix(p.CRISocket(), "unix://"), NodeIP: crioguest.NodeIP,
		PodImage: crioguest.PodImage, PauseImage: crioguest.PauseImage, SparePod: crioguest.SparePod,
		PodImageDir: crioguest.PodImageDir, PauseImageDir: crioguest.PauseImageDir,
	}
}

func unitList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + ".service"
	}
	return strings.Join(out, " ")
}

// renderRootfs returns the profile's config files by guest path: the
// plain ones as they are, the templates rendered, the empty ones left out.
// force, when set, is a run's forced namespace pinning.
func (p Profile) renderRootfs(force *bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	data := p.templateData(force)
	err := fs.WalkDir(rootfs, "rootfs", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := rootfs.ReadFile(path)
		if err != nil {
			return err
		}
		guest := strings.TrimPrefix(path, "rootfs")
		if name, ok := strings.CutSuffix(guest, ".tmpl"); ok {
			t, err := template.New(path).Option("missingkey=error").Parse(string(raw))
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if strings.TrimSpace(b.String()) == "" {
				return nil
			}
			guest, raw = name, append(bytes.TrimRight(b.Bytes(), "\n"), '\n')
		}
		out[guest] = raw
		return nil
	})
	return out, err
}

// ConfigFile renders one of the profile's config files as a run that
// forces namespace pinning on or off would have it; for CRI-O 1.16, whose
// only config file is crio.conf, that is how pinning is switched.
func (p Profile) ConfigFile(guestPath string, pinned bool) ([]byte, error) {
	files, err := p.renderRootfs(&pinned)
	if err != nil {
		return nil, err
	}
	data, ok := files[guestPath]
	if !ok {
		return nil, fmt.Errorf("profile %s has no %s", p.Name, guestPath)
	}
	return data, nil
}

// Inputs adds the profile's Kubernetes node to base. stageDir receives
// generated files (the pod image layout, the rendered configs) that the
// image build copies; it must outlive the build.
func (p Profile) Inputs(base images.Inputs, c Components, stageDir string) (images.Inputs, error) {
	in := base
	in.Packages = append(append([]string{}, base.Packages...), p.Packages()...)
	in.Enable = append(append([]string{}, base.Enable...), p.units()...)
	in.KernelArgs = append(append([]string{}, base.KernelArgs...), p.KernelArgs()...)
	in.Files = append([]images.File{}, base.Files...)
	// A slice, not a map: the image hash covers the order of Files.
	for _, f := range []struct {
		src, dst string
		want     bool
	}{
		{c.Kubelet, "/usr/local/bin/kubelet", true}, {c.CRIO, "/usr/local/bin/crio", p.IsCRIO()},
		{c.CRIDockerd, "/usr/local/bin/cri-dockerd", p.CRIDockerd.Version != ""},
		{c.Pinns, "/usr/local/bin/pinns", p.Pinns.Version != ""}, {c.Crictl, crioguest.CrictlBinary, p.Crictl.Version != ""},
		// Over Debian's, in CRI-O's plugin dir (and under a run's layer).
		{c.Loopback, "/usr/lib/cni/loopback", p.Loopback != ""},
		{c.NodeCRI, crioguest.NodeCRIBinary, true},
	} {
		if !f.want {
			continue
		}
		if f.src == "" {
			return in, fmt.Errorf("crio node %s: no binary for %s", p.Name, f.dst)
		}
		if _, err := os.Stat(f.src); err != nil {
			return in, fmt.Errorf("crio node %s: %s: %w", p.Name, f.dst, err)
		}
		in.Files = append(in.Files, images.File{Src: f.src, Dst: f.dst, Mode: 0o755})
	}
	files, err := p.renderRootfs(nil)
	if err != nil {
		return in, fmt.Errorf("crio node %s: render configs: %w", p.Name, err)
	}
	// Configs, one file each so they merge into the image's /etc; in
	// sorted order, so the image hash does not depend on a map's.
	stageRoot := filepath.Join(stageDir, "rootfs")
	for _, guest := range sortedKeys(files) {
		host := filepath.Join(stageRoot, guest)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return in, fmt.Errorf("crio node %s: stage configs: %w", p.Name, err)
		}
		if err := os.WriteFile(host, files[guest], 0o644); err != nil {
			return in, fmt.Errorf("crio node %s: stage configs: %w", p.Name, err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(guest, "/usr/local/lib/pidreuse/") {
			mode = 0o755 // the gates and wrappers are scripts
		}
		in.Files = append(in.Files, images.File{Src: host, Dst: guest, Mode: mode})
	}
	// The pod image: podserver, also installed as /pause for the infra
	// process, both exiting on SIGTERM.
	layout := filepath.Join(stageDir, "pod-image")
	if err := ociimage.Write(layout, ociimage.Image{
		Ref: "v1",
		Files: []ociimage.File{
			{Path: "/podserver", Src: c.PodServer, Mode: 0o755},
			{Path: "/pause", Src: c.PodServer, Mode: 0o755},
		},
		Entrypoint: []string{"/podserver"},
	}); err != nil {
		return in, fmt.Errorf("crio node %s: pod image: %w", p.Name, err)
	}
	in.Files = append(in.Files, images.File{Src: layout, Dst: crioguest.PodImageDir})
	if p.IsCRIO() {
		// CRI-O's store is a directory skopeo can fill in the rootfs: the
		// first boot then skips its ~8 s load (measured under TCG) and
		// CRI-O starts that much earlier. Docker's and containerd's
		// stores need their daemon running: their nodes load at first
		// boot.
		in.Prime = []string{"sh", "-c", fmt.Sprintf("skopeo copy --quiet oci:%s:v1 containers-storage:%s && mkdir -p %s && touch %s",
			crioguest.PodImageDir, crioguest.PodImage, path.Dir(crioguest.ImagesLoaded), crioguest.ImagesLoaded)}
	}
	if p.Runtime == RuntimeDocker || p.Runtime == RuntimeContainerd {
		pause := filepath.Join(stageDir, "pause-image")
		if err := ociimage.Write(pause, ociimage.Image{
			Ref:        "v1",
			Files:      []ociimage.File{{Path: "/pause", Src: c.PodServer, Mode: 0o755}},
			Entrypoint: []string{"/pause"},
		}); err != nil {
			return in, fmt.Errorf("crio node %s: pause image: %w", p.Name, err)
		}
		in.Files = append(in.Files, images.File{Src: pause, Dst: crioguest.PauseImageDir})
	}
	return in, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
