package images

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testInputs returns valid inputs whose files live in a temp directory.
func testInputs(t *testing.T) Inputs {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "debian.sources")
	writeFile(t, src, "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n", 0o644)
	agent := filepath.Join(dir, "nodeagent")
	writeFile(t, agent, "agent v1", 0o755)
	cni := filepath.Join(dir, "cni")
	writeFile(t, filepath.Join(cni, "bridge"), "bridge v1", 0o755)
	writeFile(t, filepath.Join(cni, "sub", "loopback"), "loopback v1", 0o755)
	return Inputs{
		Suite:      "bookworm",
		Packages:   DefaultPackages(),
		AptSources: src,
		Files: []File{
			{Src: agent, Dst: "/usr/local/bin/nodeagent", Mode: 0o755},
			{Src: cni, Dst: "/opt/cni/bin"},
		},
		Hostname: DefaultHostname,
		DiskSize: DefaultDiskSize,
	}
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustHash(t *testing.T, in Inputs) string {
	t.Helper()
	h, err := in.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashStable(t *testing.T) {
	in := testInputs(t)
	h := mustHash(t, in)
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex sha256", h)
	}
	if h2 := mustHash(t, in); h2 != h {
		t.Fatalf("hash not stable: %s vs %s", h, h2)
	}

	// The package set matters, not its order or duplicates.
	shuffled := in
	shuffled.Packages = append([]string{"kmod"}, in.Packages...)
	for i, j := 0, len(shuffled.Packages)-1; i < j; i, j = i+1, j-1 {
		shuffled.Packages[i], shuffled.Packages[j] = shuffled.Packages[j], shuffled.Packages[i]
	}
	if got := mustHash(t, shuffled); got != h {
		t.Errorf("package order/duplicates changed the hash")
	}

	// Source paths are not inputs: the same content elsewhere hashes the same.
	moved := in
	moved.Files = append([]File(nil), in.Files...)
	other := filepath.Join(t.TempDir(), "agent-copy")
	writeFile(t, other, "agent v1", 0o755)
	moved.Files[0].Src = other
	srcCopy := filepath.Join(t.TempDir(), "x.sources")
	b, _ := os.ReadFile(in.AptSources)
	writeFile(t, srcCopy, string(b), 0o644)
	moved.AptSources = srcCopy
	if got := mustHash(t, moved); got != h {
		t.Errorf("moving input files changed the hash")
	}

	// nil and empty lists are the same input.
	a, e := in, in
	a.Enable, e.Enable = nil, []string{}
	if mustHash(t, a) != mustHash(t, e) {
		t.Errorf("nil vs empty Enable changed the hash")
	}
}

func TestHashSensitive(t *testing.T) {
	base := testInputs(t)
	h := mustHash(t, base)
	cases := []struct {
		name   string
		mutate func(t *testing.T, in *Inputs)
	}{
		{"suite", func(t *testing.T, in *Inputs) { in.Suite = "trixie" }},
		{"extra package", func(t *testing.T, in *Inputs) { in.Packages = append(in.Packages, "cri-o") }},
		{"fewer packages", func(t *testing.T, in *Inputs) { in.Packages = in.Packages[1:] }},
		{"apt sources content", func(t *testing.T, in *Inputs) {
			p := filepath.Join(t.TempDir(), "debian.sources")
			writeFile(t, p, "Types: deb\nURIs: http://other.invalid/debian\nSuites: bookworm\nComponents: main\n", 0o644)
			in.AptSources = p
		}},
		{"file content", func(t *testing.T, in *Inputs) {
			p := filepath.Join(t.TempDir(), "nodeagent")
			writeFile(t, p, "agent v2", 0o755)
			in.Files[0].Src = p
		}},
		{"file content in place", func(t *testing.T, in *Inputs) {
			writeFile(t, in.Files[0].Src, "agent v3", 0o755)
		}},
		{"file destination", func(t *testing.T, in *Inputs) { in.Files[0].Dst = "/usr/bin/nodeagent" }},
		{"prime", func(t *testing.T, in *Inputs) { in.Prime = []string{"true"} }},
		{"file mode", func(t *testing.T, in *Inputs) { in.Files[0].Mode = 0o700 }},
		{"file order", func(t *testing.T, in *Inputs) { in.Files[0], in.Files[1] = in.Files[1], in.Files[0] }},
		{"extra file", func(t *testing.T, in *Inputs) {
			p := filepath.Join(t.TempDir(), "kubelet")
			writeFile(t, p, "kubelet", 0o755)
			in.Files = append(in.Files, File{Src: p, Dst: "/usr/local/bin/kubelet"})
		}},
		{"file in directory changed", func(t *testing.T, in *Inputs) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "bridge"), "bridge v2", 0o755)
			writeFile(t, filepath.Join(dir, "sub", "loopback"), "loopback v1", 0o755)
			in.Files[1].Src = dir
		}},
		{"file added to directory", func(t *testing.T, in *Inputs) {
			writeFile(t, filepath.Join(in.Files[1].Src, "host-local"), "host-local", 0o755)
		}},
		{"source mode of file in directory", func(t *testing.T, in *Inputs) {
			if err := os.Chmod(filepath.Join(in.Files[1].Src, "bridge"), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"enabled units", func(t *testing.T, in *Inputs) { in.Enable = []string{"kubelet.service"} }},
		{"hostname", func(t *testing.T, in *Inputs) { in.Hostname = "other" }},
		{"kernel args", func(t *testing.T, in *Inputs) { in.KernelArgs = []string{"systemd.unified_cgroup_hierarchy=0"} }},
		{"disk size", func(t *testing.T, in *Inputs) { in.DiskSize = 20 << 30 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Fresh inputs each time: some cases edit files in place.
			in := testInputs(t)
			in.Packages = append([]string(nil), in.Packages...)
			in.Files = append([]File(nil), in.Files...)
			before := mustHash(t, in)
			if before != h {
				// Only temp paths differ from base, and paths are not hashed.
				t.Fatalf("fresh inputs hash %s, want %s", before, h)
			}
			c.mutate(t, &in)
			if after := mustHash(t, in); after == before {
				t.Errorf("changing %s did not change the hash", c.name)
			}
		})
	}
}

func TestHashRejectsBadInputs(t *testing.T) {
	cases := map[string]func(in *Inputs){
		"no sources":        func(in *Inputs) { in.AptSources = "" },
		"missing sources":   func(in *Inputs) { in.AptSources = "/nonexistent/debian.sources" },
		"relative dst":      func(in *Inputs) { in.Files[0].Dst = "usr/bin/x" },
		"unclean dst":       func(in *Inputs) { in.Files[0].Dst = "/usr/../etc/x" },
		"missing src":       func(in *Inputs) { in.Files[0].Src = "/nonexistent/agent" },
		"bad package":       func(in *Inputs) { in.Packages = append(in.Packages, "a,b") },
		"tiny disk":         func(in *Inputs) { in.DiskSize = 1 << 20 },
		"no suite":          func(in *Inputs) { in.Suite = "" },
		"bad unit":          func(in *Inputs) { in.Enable = []string{"--now"} },
		"mode not perm":     func(in *Inputs) { in.Files[0].Mode = os.ModeDir | 0o755 },
		"no hostname":       func(in *Inputs) { in.Hostname = "" },
		"spaced kernel arg": func(in *Inputs) { in.KernelArgs = []string{"a b"} },
		"unaligned disk":    func(in *Inputs) { in.DiskSize = 2<<30 + 1 },
		"dst is the root":   func(in *Inputs) { in.Files[0].Dst = "/" },
		"empty source src":  func(in *Inputs) { in.Files[0].Src = "" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := testInputs(t)
			mutate(&in)
			if _, err := in.Hash(); err == nil {
				t.Errorf("Hash accepted invalid inputs")
			}
		})
	}
}

func TestFindAptSources(t *testing.T) {
	deb822 := "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n"
	oneLine := "deb http://mirror.invalid/debian bookworm main\n"
	cases := []struct {
		name  string
		files map[string]string
		want  string // "" means an error is expected
	}{
		{"deb822 wins, disabled skipped", map[string]string{
			"sources.list": oneLine,
			"sources.list.d/aaa.sources.disabled-by-farm":     deb822,
			"sources.list.d/nodesource.sources.disabled-by-x": deb822,
			"sources.list.d/google.list.disabled-by-farm":     oneLine,
			"sources.list.d/b.disabled.sources":               deb822,
			"sources.list.d/debian.sources":                   deb822,
		}, "sources.list.d/debian.sources"},
		{"comment-only deb822 skipped", map[string]string{
			"sources.list.d/a.sources":      "# nothing here\n\n",
			"sources.list.d/debian.sources": deb822,
		}, "sources.list.d/debian.sources"},
		{"only sources.list", map[string]string{
			"sources.list":                         oneLine,
			"sources.list.d/x.sources.disabled-by": deb822,
		}, "sources.list"},
		{"empty sources.list falls back to .list", map[string]string{
			"sources.list":                "# generated\n",
			"sources.list.d/debian.list":  oneLine,
			"sources.list.d/debian.list~": oneLine,
		}, "sources.list.d/debian.list"},
		{"nothing enabled", map[string]string{
			"sources.list":                            "",
			"sources.list.d/debian.sources.disabled":  deb822,
			"sources.list.d/debian.sources.dpkg-dist": deb822,
		}, ""},
		{"no directory at all", map[string]string{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range c.files {
				writeFile(t, filepath.Join(root, name), content, 0o644)
			}
			got, err := FindAptSources(root)
			if c.want == "" {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, c.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// fakeEntry writes the artifacts of an entry, as the real stages would.
func fakeArtifacts(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, BaseDiskName), "qcow2", 0o644)
	writeFile(t, filepath.Join(dir, KernelName), "kernel", 0o644)
	writeFile(t, filepath.Join(dir, InitrdName), "initrd", 0o644)
	writeFile(t, filepath.Join(dir, ClientKeyName), "key", 0o600)
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fakeArtifacts(t, dir)
	var arts []Artifact
	for _, n := range []string{BaseDiskName, KernelName, InitrdName} {
		a, err := artifact(dir, n)
		if err != nil {
			t.Fatal(err)
		}
		arts = append(arts, a)
	}
	m := Manifest{
		FormatVersion:     FormatVersion,
		InputHash:         strings.Repeat("ab", 32),
		BuiltAt:           time.Date(2025, 11, 25, 18, 0, 0, 0, time.UTC),
		BuildDuration:     6*time.Minute + 3*time.Second,
		Suite:             "bookworm",
		AptSourcesSHA256:  strings.Repeat("cd", 32),
		RequestedPackages: []string{"openssh-server", "systemd"},
		Packages:          []Package{{"openssh-server", "1:9.2p1-2+deb12u3", "amd64"}, {"systemd", "252.33-1~deb12u1", "amd64"}},
		Files:             []LaidFile{{Dst: "/usr/local/bin/nodeagent", Kind: "file", Mode: 0o755, SHA256: strings.Repeat("ef", 32)}},
		KernelVersion:     "6.1.0-28-amd64",
		KernelCmdline:     KernelCmdline,
		BaseDisk:          arts[0],
		Kernel:            arts[1],
		Initrd:            arts[2],
		DiskSize:          DefaultDiskSize,
		Hostname:          DefaultHostname,
		HostPublicKey:     "ssh-ed25519 AAAAhost pidreuse-node-host",
		ClientPublicKey:   "ssh-ed25519 AAAAclient pidreuse-harness",
	}
	if err := writeManifest(dir, &m); err != nil {
		t.Fatal(err)
	}
	img, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(img.Manifest, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", img.Manifest, m)
	}
	if img.BaseDisk != filepath.Join(dir, BaseDiskName) || img.Kernel != filepath.Join(dir, KernelName) ||
		img.Initrd != filepath.Join(dir, InitrdName) || img.ClientKey != filepath.Join(dir, ClientKeyName) || img.Dir != dir {
		t.Errorf("paths: %+v", img)
	}

	// Load checks the directory name against the manifest's hash.
	root := t.TempDir()
	if err := os.Rename(dir, filepath.Join(root, m.InputHash)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(root, m.InputHash); err != nil {
		t.Errorf("Load: %v", err)
	}
	other := strings.Repeat("00", 32)
	if err := os.Rename(filepath.Join(root, m.InputHash), filepath.Join(root, other)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(root, other); err == nil {
		t.Errorf("Load accepted an entry whose manifest names another hash")
	}
}

func TestLoadDirRejectsIncomplete(t *testing.T) {
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		fakeArtifacts(t, dir)
		m := Manifest{FormatVersion: FormatVersion, InputHash: "h", HostPublicKey: "k", ClientPublicKey: "k"}
		var err error
		if m.BaseDisk, err = artifact(dir, BaseDiskName); err != nil {
			t.Fatal(err)
		}
		m.Kernel, _ = artifact(dir, KernelName)
		m.Initrd, _ = artifact(dir, InitrdName)
		if err := writeManifest(dir, &m); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadDir(dir); err != nil {
			t.Fatalf("complete entry rejected: %v", err)
		}
		return dir
	}
	cases := map[string]func(t *testing.T, dir string){
		"no manifest":      func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ManifestName)) },
		"corrupt manifest": func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, ManifestName), "{", 0o644) },
		"no base disk":     func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, BaseDiskName)) },
		"truncated initrd": func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, InitrdName), "i", 0o644) },
		"no client key":    func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ClientKeyName)) },
		"open client key":  func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, ClientKeyName), 0o644) },
		"old format": func(t *testing.T, dir string) {
			img, _ := LoadDir(dir)
			img.Manifest.FormatVersion = FormatVersion - 1
			writeManifest(dir, &img.Manifest)
		},
		"artifact outside entry": func(t *testing.T, dir string) {
			img, _ := LoadDir(dir)
			img.Manifest.Kernel.Path = "../vmlinuz"
			writeManifest(dir, &img.Manifest)
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := setup(t)
			damage(t, dir)
			if _, err := LoadDir(dir); err == nil {
				t.Errorf("LoadDir accepted a damaged entry")
			}
		})
	}
}

// fakeStages stand in for mmdebstrap and friends: they write the artifacts
// the real ones would, and the real manifest stage runs after them.
func fakeStages(calls *[]string, failAt string, failWith func(ctx context.Context) error) []stage {
	mk := func(name string, body func(s *buildState) error) stage {
		return stage{name, func(ctx context.Context, s *buildState) error {
			*calls = append(*calls, name)
			if name == failAt {
				return failWith(ctx)
			}
			return body(s)
		}}
	}
	return []stage{
		mk(StageRootfs, func(s *buildState) error {
			// Something big the real build would remove on failure.
			return os.MkdirAll(filepath.Join(s.workDir(), "rootfs", "etc"), 0o755)
		}),
		mk(StageConfigure, func(s *buildState) error {
			s.kernelVersion = "6.1.0-test-amd64"
			s.packages = []Package{{"systemd", "252", "amd64"}}
			if err := os.WriteFile(filepath.Join(s.dir, KernelName), []byte("kernel"), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(s.dir, InitrdName), []byte("initrd"), 0o644)
		}),
		mk(StageDisk, func(s *buildState) error { return nil }),
		mk(StageConvert, func(s *buildState) error {
			if err := os.WriteFile(filepath.Join(s.dir, BaseDiskName), []byte("qcow2"), 0o644); err != nil {
				return err
			}
			return os.RemoveAll(s.workDir())
		}),
		{StageManifest, func(ctx context.Context, s *buildState) error {
			*calls = append(*calls, StageManifest)
			if failAt == StageManifest {
				return failWith(ctx)
			}
			return stageManifest(ctx, s)
		}},
	}
}

// assertNoEntry checks a failed build left nothing but its lock file.
func assertNoEntry(t *testing.T, cacheRoot, hash string) {
	t.Helper()
	ents, err := os.ReadDir(cacheRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != ".lock-"+hash {
			t.Errorf("failed build left %s in the cache", e.Name())
		}
	}
	if _, err := Load(cacheRoot, hash); err == nil {
		t.Errorf("failed build is loadable")
	}
}

func TestBuildFailingStageLeavesNoEntry(t *testing.T) {
	for _, failAt := range []string{StageRootfs, StageConfigure, StageConvert, StageManifest} {
		t.Run(failAt, func(t *testing.T) {
			in := testInputs(t)
			cacheRoot := t.TempDir()
			var calls []string
			boom := errors.New("boom")
			b := &builder{stages: fakeStages(&calls, failAt, func(context.Context) error { return boom })}
			_, err := b.build(context.Background(), in, cacheRoot, nil)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
			if !strings.Contains(err.Error(), failAt) {
				t.Errorf("error %q does not name the stage", err)
			}
			assertNoEntry(t, cacheRoot, mustHash(t, in))
		})
	}
}

func TestBuildCanceledLeavesNoEntry(t *testing.T) {
	in := testInputs(t)
	cacheRoot := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls []string
	// The stage blocks like a long command until the build is canceled.
	b := &builder{stages: fakeStages(&calls, StageDisk, func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})}
	_, err := b.build(ctx, in, cacheRoot, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertNoEntry(t, cacheRoot, mustHash(t, in))
	if _, err := b.build(ctx, in, cacheRoot, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("build with a canceled context: err = %v", err)
	}
}

func TestBuildPublishesAndHitsCache(t *testing.T) {
	in := testInputs(t)
	cacheRoot := t.TempDir()
	hash := mustHash(t, in)
	// Leftovers of a killed build and of a damaged entry must not matter.
	writeFile(t, filepath.Join(cacheRoot, ".tmp-"+hash+"-123", "work", "rootfs", "etc", "x"), "x", 0o644)
	writeFile(t, filepath.Join(cacheRoot, hash, "half-written"), "x", 0o644)

	var calls []string
	var seen []string
	progress := func(stage string, d time.Duration) { seen = append(seen, stage) }
	b := &builder{stages: fakeStages(&calls, "", nil)}
	img, err := b.build(context.Background(), in, cacheRoot, progress)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{StageRootfs, StageConfigure, StageDisk, StageConvert, StageManifest}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("stages run: %v", calls)
	}
	var wantSeen []string
	for _, s := range want {
		wantSeen = append(wantSeen, s, s) // start and end
	}
	if !reflect.DeepEqual(seen, wantSeen) {
		t.Errorf("progress: %v, want %v", seen, wantSeen)
	}
	if img.Dir != filepath.Join(cacheRoot, hash) {
		t.Errorf("entry at %s", img.Dir)
	}
	ents, _ := os.ReadDir(cacheRoot)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp directory %s left behind", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(img.Dir, "half-written")); err == nil {
		t.Errorf("damaged entry content survived")
	}
	m := img.Manifest
	if m.InputHash != hash || m.KernelVersion != "6.1.0-test-amd64" || m.BaseDisk.Size != 5 || m.Suite != "bookworm" ||
		m.DiskSize != DefaultDiskSize || !reflect.DeepEqual(m.RequestedPackages, sortedSet(DefaultPackages())) {
		t.Errorf("manifest: %+v", m)
	}

	// The client key in the entry matches the manifest and is private.
	keyPEM, err := os.ReadFile(img.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); !strings.HasPrefix(m.ClientPublicKey, got+" ") {
		t.Errorf("client key does not match manifest: %s vs %s", got, m.ClientPublicKey)
	}
	if fi, _ := os.Stat(img.ClientKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v", fi.Mode().Perm())
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostPublicKey)); err != nil {
		t.Errorf("host key line: %v", err)
	}
	if m.HostPublicKey == m.ClientPublicKey {
		t.Errorf("host and client keys are the same")
	}

	// Second build: a cache hit that runs no stage.
	calls, seen = nil, nil
	start := time.Now()
	again, err := b.build(context.Background(), in, cacheRoot, progress)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cache hit took %v", d)
	}
	if len(calls) != 0 || !reflect.DeepEqual(seen, []string{StageCached}) {
		t.Errorf("cache hit ran stages %v, progress %v", calls, seen)
	}
	if !reflect.DeepEqual(again.Manifest, img.Manifest) {
		t.Errorf("cache hit returned another manifest")
	}
}

func TestKeyPair(t *testing.T) {
	k, err := newKeyPair("comment")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(k.private)
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(k.authorized))
	if err != nil {
		t.Fatal(err)
	}
	if comment != "comment" || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) || pub.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key pair mismatch: %s", k.authorized)
	}
	if !bytes.Contains(k.private, []byte("OPENSSH PRIVATE KEY")) {
		t.Errorf("private key is not in OpenSSH format")
	}
}

func TestParseDpkgQuery(t *testing.T) {
	out := "ii \tsystemd\t252.33-1~deb12u1\tamd64\n" +
		"rc \told-thing\t1.0\tamd64\n" +
		"ii \tbase-files\t12.4+deb12u8\tamd64\n" +
		"garbage\n"
	got, err := parseDpkgQuery([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"base-files", "12.4+deb12u8", "amd64"}, {"systemd", "252.33-1~deb12u1", "amd64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if _, err := parseDpkgQuery([]byte("")); err == nil {
		t.Errorf("empty package list accepted")
	}
}

func TestLayFiles(t *testing.T) {
	in := testInputs(t)
	d, err := in.digest()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	// A rootfs symlink pointing out of the rootfs must not be followed.
	if err := os.MkdirAll(filepath.Join(rootfs, "usr", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(rootfs, "opt")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := &buildState{in: in, d: d}
	if err := s.layFiles(r); err == nil {
		t.Fatalf("layFiles followed a symlink out of the rootfs")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the rootfs: %v", ents)
	}

	if err := os.Remove(filepath.Join(rootfs, "opt")); err != nil {
		t.Fatal(err)
	}
	s = &buildState{in: in, d: d}
	if err := s.layFiles(r); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/local/bin/nodeagent":  "agent v1",
		"opt/cni/bin/bridge":       "bridge v1",
		"opt/cni/bin/sub/loopback": "loopback v1",
	} {
		b, err := os.ReadFile(filepath.Join(rootfs, p))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(rootfs, "usr/local/bin/nodeagent")); fi.Mode().Perm() != 0o755 {
		t.Errorf("nodeagent mode %v", fi.Mode())
	}
	if len(s.files) != 5 { // nodeagent, cni dir, bridge, sub, loopback
		t.Errorf("laid files: %+v", s.files)
	}

	// A file changed after hashing is caught.
	writeFile(t, in.Files[0].Src, "agent v2", 0o755)
	s = &buildState{in: in, d: d}
	if err := s.layFiles(r); err == nil {
		t.Errorf("content changed after hashing went unnoticed")
	}
}
