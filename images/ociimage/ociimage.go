// Package ociimage writes a minimal OCI image layout — one uncompressed
// layer of static files — so the node's pods need no registry. The output
// is deterministic (fixed times, sorted entries), so it hashes the same on
// every build and does not bust the node image cache.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one file of the image's single layer.
type File struct {
	Path string // absolute path in the image
	Src  string // host file to copy
	Mode int64
}

// Image describes what to write.
type Image struct {
	// Ref is the tag recorded in index.json (org.opencontainers.image.ref.name),
	// what `skopeo copy oci:DIR:REF` names.
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
}

// Write lays img out as an OCI image layout in dir (created). The JSON
// documents are encoded from the image-spec types, whose fields
// encoding/json writes in declaration order (and map keys sorted), so the
// same img gives the same bytes and digests.
func Write(dir string, img Image) error {
	if img.Ref == "" || len(img.Files) == 0 {
		return fmt.Errorf("oci image %s: needs a ref and at least one file", dir)
	}
	layer, err := layerTar(img.Files)
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	blobs := filepath.Join(dir, v1.ImageBlobsDir, digest.Canonical.String())
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	put := func(mediaType string, data []byte) (v1.Descriptor, error) {
		d := digest.Canonical.FromBytes(data)
		desc := v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
		return desc, os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o644)
	}
	putJSON := func(mediaType string, v any) (v1.Descriptor, error) {
		data, err := json.Marshal(v)
		if err != nil {
			return v1.Descriptor{}, err
		}
		return put(mediaType, data)
	}
	layerDesc, err := put(v1.MediaTypeImageLayer, layer)
	if err != nil {
		return err
	}
	configDesc, err := putJSON(v1.MediaTypeImageConfig, v1.Image{
		Platform: v1.Platform{Architecture: "amd64", OS: "linux"},
		Config:   v1.ImageConfig{Entrypoint: img.Entrypoint, Cmd: img.Cmd},
		// The layer is uncompressed, so its diff ID is its digest.
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	if err != nil {
		return err
	}
	manifestDesc, err := putJSON(v1.MediaTypeImageManifest, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []v1.Descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc.Annotations = map[string]string{v1.AnnotationRefName: img.Ref}
	index, err := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, v1.ImageIndexFile), index, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, v1.ImageLayoutFile), layout, 0o644)
}

// layerTar packs files with their parent directories, sorted, with a
// fixed modification time.
func layerTar(files []File) ([]byte, error) {
	epoch := time.Unix(0, 0).UTC()
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/" && d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range sorted {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: f.Mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
