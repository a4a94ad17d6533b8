package nodeagent

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// imageName returns an image reference without its tag or digest:
// "rotor-example-server:dev" and "rotor-example-server@sha256:…" give
// "rotor-example-server"; a registry's port stays ("localhost:5000/x:1"
// gives "localhost:5000/x").
func imageName(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndexByte(ref, '/')
	if i := strings.LastIndexByte(ref, ':'); i > slash {
		ref = ref[:i]
	}
	return ref
}

// imageStore holds the images the agent can run, "pulled" into its
// directory at start.
type imageStore struct {
	images map[string]Image // by name; Binary is the copy in the store
}

// pullImages copies every image's binary into dir, mode 0755, so that a
// container running as any user can execute it, as a runtime unpacks an
// image's layers before it runs a container.
func pullImages(dir string, images map[string]Image) (*imageStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nodeagent: image directory: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nodeagent: image directory: %w", err)
	}
	s := &imageStore{images: map[string]Image{}}
	for _, name := range slices.Sorted(maps.Keys(images)) {
		img := images[name]
		dst := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(name))
		if err := copyExecutable(img.Binary, dst); err != nil {
			return nil, fmt.Errorf("nodeagent: pull image %s from %s: %w", name, img.Binary, err)
		}
		img.Binary = dst
		s.images[name] = img
	}
	return s, nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Rename(tmp, dst)
}

// errImage is why a container's image cannot run; its message is the
// container's waiting message (reason ErrImagePull).
type errImage struct{ ref, known string }

func (e *errImage) Error() string {
	return fmt.Sprintf("failed to pull image %q: the lab's node agent runs only images it maps to binaries built from this repository (%s), with any tag", e.ref, e.known)
}

// lookup returns the image a reference names, whatever its tag.
func (s *imageStore) lookup(ref string) (Image, error) {
	if img, ok := s.images[imageName(ref)]; ok {
		return img, nil
	}
	return Image{}, &errImage{ref: ref, known: strings.Join(slices.Sorted(maps.Keys(s.images)), ", ")}
}
