package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/schema"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func writeImage(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(dir, Image{Ref: "v1", Entrypoint: []string{"/podserver"}, Files: []File{
		// Out of order: the layer sorts them.
		{Path: "/usr/bin/pause", Src: src, Mode: 0o755},
		{Path: "/podserver", Src: src, Mode: 0o755},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// readTree maps every file under dir (by relative path) to its bytes.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The layout must be byte-for-byte the same on every build: the node image
// hashes it.
func TestDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeImage(t, a)
	writeImage(t, b)
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != 5 { // oci-layout, index.json and three blobs
		t.Errorf("layout holds %d files, want 5", len(ta))
	}
	for name, data := range ta {
		if tb[name] != data {
			t.Errorf("%s differs between two writes:\n%q\n%q", name, data, tb[name])
		}
	}
	for name := range tb {
		if _, ok := ta[name]; !ok {
			t.Errorf("%s only in the second write", name)
		}
	}
}

// The digests are pinned: the node image's cache key hashes the layout, so
// a change here (a field, the tar encoding, a library's JSON) rebuilds every
// cached node image once. If it is meant, update the digest.
func TestManifestDigestIsPinned(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir)
	var index v1.Index
	readJSON(t, filepath.Join(dir, v1.ImageIndexFile), &index)
	const want = "sha256:97a36e1a3fa00fc88ba20e2558187e59f4d1f57cf03eab9e00eca1436df526a8"
	if got := index.Manifests[0].Digest; got != want {
		t.Errorf("manifest digest %s, want %s", got, want)
	}
}

// Every JSON document of the layout passes the image-spec's own schema.
func TestSchemas(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir)
	var index v1.Index
	readJSON(t, filepath.Join(dir, v1.ImageIndexFile), &index)
	manifest := readBlob(t, dir, index.Manifests[0])
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	layout, _ := os.ReadFile(filepath.Join(dir, v1.ImageLayoutFile))
	indexData, _ := os.ReadFile(filepath.Join(dir, v1.ImageIndexFile))
	for _, c := range []struct {
		name string
		v    schema.Validator
		data []byte
	}{
		{"oci-layout", schema.ValidatorMediaTypeLayoutHeader, layout},
		{"index.json", schema.ValidatorMediaTypeImageIndex, indexData},
		{"manifest", schema.ValidatorMediaTypeManifest, manifest},
		{"config", schema.ValidatorMediaTypeImageConfig, readBlob(t, dir, m.Config)},
	} {
		if err := c.v.Validate(bytes.NewReader(c.data)); err != nil {
			t.Errorf("%s does not pass the %s schema: %v\n%s", c.name, string(c.v), err, c.data)
		}
	}
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", p, err, data)
	}
}

// readBlob reads the blob d points at and checks it against d's digest
// and size.
func readBlob(t *testing.T, dir string, d v1.Descriptor) []byte {
	t.Helper()
	if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != digest.SHA256 {
		t.Fatalf("descriptor digest %q: %v", d.Digest, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(data) != d.Digest || int64(len(data)) != d.Size {
		t.Errorf("blob %s does not match its descriptor (size %d, want %d)", d.Digest, len(data), d.Size)
	}
	return data
}

// What skopeo (`skopeo copy oci:DIR:v1 containers-storage:…`) reads: the
// layout version, an index naming the ref, a manifest whose config and
// layer have the OCI media types, blobs named by their digests, and a
// layer holding the files with their parent dirs.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir)
	if got, _ := os.ReadFile(filepath.Join(dir, "oci-layout")); string(got) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}

	var index v1.Index
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if index.SchemaVersion != 2 || index.MediaType != "application/vnd.oci.image.index.v1+json" || len(index.Manifests) != 1 {
		t.Fatalf("index %+v", index)
	}
	md := index.Manifests[0]
	if md.MediaType != "application/vnd.oci.image.manifest.v1+json" || md.Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Errorf("index names %+v, want the manifest tagged v1", md)
	}

	var manifest v1.Manifest
	if err := json.Unmarshal(readBlob(t, dir, md), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.SchemaVersion != 2 || manifest.MediaType != md.MediaType || len(manifest.Layers) != 1 {
		t.Fatalf("manifest %+v", manifest)
	}
	if manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config media type %q", manifest.Config.MediaType)
	}
	ld := manifest.Layers[0]
	if ld.MediaType != "application/vnd.oci.image.layer.v1.tar" {
		t.Errorf("layer media type %q", ld.MediaType)
	}

	var config v1.Image
	if err := json.Unmarshal(readBlob(t, dir, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if config.OS != "linux" || config.Architecture != "amd64" || strings.Join(config.Config.Entrypoint, " ") != "/podserver" || config.Config.Cmd != nil {
		t.Errorf("config %+v", config)
	}
	if config.RootFS.Type != "layers" || len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != ld.Digest {
		t.Errorf("rootfs %+v, want the uncompressed layer's digest as its diff ID", config.RootFS)
	}

	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) != 3 {
		t.Errorf("want 3 blobs (layer, config, manifest), got %v %v", blobs, err)
	}

	tr := tar.NewReader(bytes.NewReader(readBlob(t, dir, ld)))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Mode != 0o755 || !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mode %o, mtime %s, owner %d:%d; want 755, the epoch, 0:0", h.Name, h.Mode, h.ModTime, h.Uid, h.Gid)
		}
	}
	if got := strings.Join(names, " "); got != "usr/ usr/bin/ podserver usr/bin/pause" {
		t.Fatalf("layer entries %q", got)
	}
}
