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

// CRIDockerd is the cri-dockerd release of the cri-dockerd node: the
// newest on the module proxy when it was added (2026-12), whose
// StopPodSandbox still hands CNI DEL /proc/<pause pid>/ns/net read from
// docker inspect (core/sandbox_stop.go, network/cni/cni.go TearDownPod,
// core/helpers_linux.go getNetworkNamespace).
const CRIDockerd = "v0.4.3"

// CRIOSource pins one CRI-O release built from its source tree instead of
// the Go module proxy, which refuses every CRI-O version before v1.34.
// The tree comes from the release tarball (`git archive` of the tag, with
// its vendor/) or from a git clone of the upstream repository; either is
// checked against these hashes before anything is built from it.
type CRIOSource struct {
	Tag    string // upstream tag, also the component's version
	Commit string // the commit the tag names
	// TarballSHA256 is the sha256 of cri-o-<Tag>.tar.gz as shipped.
	TarballSHA256 string
	// TarSHA256 is the sha256 of the uncompressed tar, which is byte for
	// byte `git -c core.abbrev=<CRIOArchiveAbbrev> archive --format=tar
	// --prefix=cri-o-<Tag>/ <Commit>`: the one hash that a tarball and a
	// clone can both be checked against.
	TarSHA256 string
	// Pinns says the tree has pinns/ (CRI-O 1.17 and later).
	Pinns bool
}

// CRIOArchiveAbbrev is the hash length `git archive` wrote into the
// release tarballs: the vendored client-go and component-base carry
// export-subst files ($Format:%h$), so the archive depends on it, and
// git's default length grows with the clone (a shallow clone gives 7).
const CRIOArchiveAbbrev = 10

// CRIOSources are the bug-era CRI-O releases, oldest first: 1.16 passes
// /proc/<pid>/ns/net to DEL unchecked, 1.17 has the pinning switch, off by
// default (docs/crio-nodes.md).
func CRIOSources() []CRIOSource {
	return []CRIOSource{
		{
			Tag:           CRIO116,
			Commit:        "cd4b6ae84b438ad8ef622e1e5407bbd2bf78b29c",
			TarballSHA256: "e8ab9a680a08ce545d37d6d978c32a9f411680d7c8e2ced04de5dfa61efe6340",
			TarSHA256:     "dffd1a2b58ce36cbc7c6fb7d2d98a515b5644adbcb06f69346397ae9aebb38e4",
		},
		{
			Tag:           CRIO117,
			Commit:        "6b97f815cfbdf680a7ddf2435291fb7e49776ef1",
			TarballSHA256: "023dd76760584fb5a18c78be07f4439ea1d62c7193374c609dadf6e132fb5a40",
			TarSHA256:     "f70c8b13768bff703b5b4ae4d37f369ff32357a917c2571c108b5d4045e3a751",
			Pinns:         true,
		},
	}
}

// Bug-era node components: CRI-O 1.16 passes /proc/<pid>/ns/net to CNI
// DEL unchecked; 1.17 has manage_ns_lifecycle (pinns), off by default.
// Kubelet 1.17 serves both (its staging modules are pinned to v0.17.5).
const (
	CRIO116       = "v1.16.2"
	CRIO117       = "v1.17.5"
	KubeletLegacy = "v1.17.5"
)

// Reflect2Fixed replaces github.com/modern-go/reflect2 v1.0.1 in the
// bug-era builds: v1.0.1 crashes at run time under Go >= 1.18 (jsoniter
// map marshalling), v1.0.2 is the fix.
const Reflect2Fixed = "v1.0.2"
