// Command opampsupervisor is a thin wrapper that builds the OpAMP supervisor
// from collector-contrib's `supervisor` package. The upstream command module
// carries replace directives, so `go install` refuses it; importing the
// package from a module of our own sidesteps that without vendoring its source.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor/supervisor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor/supervisor/config"
	"github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor/supervisor/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "opampsupervisor:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("config", "", "path to the supervisor's YAML configuration")
	flag.Parse()
	if *path == "" {
		return fmt.Errorf("--config is required")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fmt.Errorf("loading %s: %w", *path, err)
	}
	logger, err := telemetry.NewLogger(cfg.Telemetry.Logs)
	if err != nil {
		return fmt.Errorf("creating logger: %w", err)
	}
	// Stop on SIGTERM as well as SIGINT: the test bench and process managers send SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := supervisor.NewSupervisor(ctx, logger.Named("supervisor"), cfg)
	if err != nil {
		return fmt.Errorf("creating supervisor: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("starting supervisor: %w", err)
	}
	<-ctx.Done()
	s.Shutdown()
	return nil
}
