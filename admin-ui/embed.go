package adminui

import (
	"embed"
	"io/fs"
)

// dist is the build output; "all:" keeps files whose names start with "_" (Rollup names shared
// chunks that way).
//
//go:embed all:dist
var dist embed.FS

// Placeholder is the committed file that stands in dist/ before the front end is built.
const Placeholder = "placeholder.txt"

// Assets returns the built front end, rooted at dist/: app/index.html, store/*.html, assets/…,
// widget.js.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil { // only a bad literal path could cause this
		panic(err)
	}
	return sub
}

// Built reports whether the embedded folder holds a build, not only the placeholder.
func Built() bool {
	_, err := fs.Stat(Assets(), "app/index.html")
	return err == nil
}
