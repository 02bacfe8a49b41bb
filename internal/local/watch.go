package local

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce lets an editor finish a save (write, rename, chmod) before the files are re-read.
const debounce = 100 * time.Millisecond

// watchConfig re-reads the config when any config file or folder changes. It watches parent
// folders rather than files because editors save by writing a new file and renaming it over
// the old one, which ends a watch on the file itself.
func (m *Mesh) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Error("config: cannot watch files; edits need a restart", "err", err)
		return
	}
	defer w.Close()
	relevant := map[string]bool{} // files, and folders whose every YAML file counts
	for _, p := range m.configFiles() {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		relevant[abs] = true
		dir := filepath.Dir(abs)
		if st, err := os.Stat(abs); err == nil && st.IsDir() {
			dir = abs
		}
		if err := w.Add(dir); err != nil {
			m.log.Warn("config: cannot watch", "path", dir, "err", err)
		}
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if relevant[ev.Name] || relevant[filepath.Dir(ev.Name)] && isYAML(ev.Name) {
				timer = time.After(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			m.log.Warn("config: watch error", "err", err)
		case <-timer:
			timer = nil
			m.reload(ctx)
		}
	}
}

func isYAML(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}
