// probe is a tiny static test helper baked into a scratch image by tests/kind/smoke.py, so the
// smoke test needs no image registry and no shell in the image.
//
//	probe serve ADDR TEXT   serve TEXT over HTTP on ADDR (e.g. :8080)
//	probe get URL           print URL's body; retries for 60 s, exit 1 if it never succeeds
//	probe resolve NAME      print NAME's addresses; retries for 60 s
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func retry(what string, f func() (string, error)) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := f()
		if err == nil {
			fmt.Println(out)
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
			os.Exit(1)
		}
		time.Sleep(time.Second)
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve ADDR TEXT | get URL | resolve NAME")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		text := ""
		if len(os.Args) > 3 {
			text = os.Args[3]
		}
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, text) })
		fmt.Fprintln(os.Stderr, http.ListenAndServe(os.Args[2], nil))
		os.Exit(1)
	case "get":
		client := &http.Client{Timeout: 5 * time.Second}
		retry("get "+os.Args[2], func() (string, error) {
			resp, err := client.Get(os.Args[2])
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return string(body), err
		})
	case "resolve":
		retry("resolve "+os.Args[2], func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
			return fmt.Sprint(addrs), err
		})
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}
