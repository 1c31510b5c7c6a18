// Command ferretdb serves the MongoDB wire protocol for vigie's local stack with FerretDB 1.x's
// embeddable package (github.com/FerretDB/FerretDB/ferretdb).
//
// Why not FerretDB's own cmd/ferretdb: built from the module proxy (go install, or go build from a
// wrapper module, which still records FerretDB as the binary's main module) it panics at start with
// "Invalid build/version/version.txt file content" (upstream issue #2982): that generated file is not
// in the module download. The check only runs when FerretDB is the main module, and here our module is.
//
// The embeddable package keeps its state in memory (no state.json) and never starts telemetry or the
// HTTP debug listener, so those flags of cmd/ferretdb have no counterpart here.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/ferretdb"
)

const ferretModule = "github.com/FerretDB/FerretDB"

// ferretVersion is the FerretDB module version linked into this binary, from Go's build information.
func ferretVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == ferretModule {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "listen TCP address")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI of a directory (the trailing slash is required)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL for the postgresql handler")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn or error")
	printVersion := flag.Bool("version", false, "print the FerretDB version and exit")
	flag.Parse()

	// FerretDB leaves its version "unknown" when it is not the main module; set it from the build
	// information so the server's buildInfo command (ferretdbVersion) and --version tell the truth.
	version.Get().Version = ferretVersion()
	if *printVersion {
		fmt.Println("FerretDB", version.Get().Version)
		return
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:        logger,
		Handler:       *handler,
		PostgreSQLURL: *postgresqlURL,
		SQLiteURL:     *sqliteURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	// Run until supervisord's SIGTERM (or ^C); Run closes the listener, connections and back end.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("starting FerretDB", "version", version.Get().Version, "handler", *handler,
		"listen", *listenAddr, "mongodbVersion", version.Get().MongoDBVersion)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
	logger.Info("FerretDB stopped")
}
