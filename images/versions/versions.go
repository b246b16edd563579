// Package versions pins every component pidreuse builds from source, in
// one place: a bump here changes the cache keys of everything built from it.
package versions

// CNIPluginsModule is the Go module the loopback plugin is built from.
const CNIPluginsModule = "github.com/containernetworking/plugins"

// CNIPlugins are the released plugin versions in the matrix. v0.7.5 and
// v0.8.0 have no go.mod and cannot be built with `go install`; v1.10.0 was
// the newest served when this list was written.
var CNIPlugins = []string{"v0.8.7", "v1.0.1", "v1.1.1", "v1.6.2", "v1.10.0"}

// DefaultCNIPlugin is the version used when a run names none.
const DefaultCNIPlugin = "v1.10.0"

// DebianCNIPlugins names the plugins of Debian's containernetworking-plugins
// package, which installs them in DebianCNIPluginDir.
const (
	DebianCNIPlugins   = "debian"
	DebianCNIPluginDir = "/usr/lib/cni"
)

// Node components built from source into the VM image (see package
// components). Kubelet's staging modules (k8s.io/api, ...) are pinned to the
// matching v0.x.y, so a bump here bumps them too.
const (
	Kubelet = "v1.34.2"
	CRIO    = "v1.34.0" // also the version of pinns, built from CRI-O's module
	Crictl  = "v1.34.0"
)
