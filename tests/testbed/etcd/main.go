// Command etcd is a thin wrapper around the upstream etcd server entry point, so the pinned
// go.etcd.io/etcd/server/v3 release can be built from the module proxy (the etcd repo's own
// main module uses ../ replaces and cannot be built with `go install pkg@version`).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
