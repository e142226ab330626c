package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/store"
)

// DB is the benchmarks' own PostgreSQL database, with one schema per scenario, so that the
// backends serving a run can be told apart from other users of the server (see SampleCPU).
type DB struct {
	server string // URL of a database on the same server, used to create and drop Name
	Name   string
	url    string // URL of Name
	own    bool   // Name was created here and is dropped by Close
	keep   bool
}

// OpenDB creates the database name (dropping an old one of that name) on the server of
// serverURL and the vector extension in it. When the role may not create databases, the
// database of serverURL itself is used, with a schema per scenario. With keep, Close leaves
// the database in place for inspection.
func OpenDB(ctx context.Context, serverURL, name string, keep bool) (*DB, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", pgtest.Redact(serverURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	d := &DB{server: serverURL, Name: name, keep: keep}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err == nil {
		if _, err = conn.Exec(ctx, "CREATE DATABASE "+ident); err == nil {
			d.own = true
		}
	}
	if d.own {
		u, err := url.Parse(serverURL)
		if err != nil {
			return nil, fmt.Errorf("parse database URL %s: %w", pgtest.Redact(serverURL), err)
		}
		u.Path = "/" + name
		d.url = u.String()
	} else {
		d.url = serverURL
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&d.Name); err != nil {
			return nil, fmt.Errorf("read database name: %w", err)
		}
	}
	c2, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", pgtest.Redact(d.url), err)
	}
	defer c2.Close(context.WithoutCancel(ctx))
	if _, err := c2.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"); err != nil {
		return nil, fmt.Errorf("create extension vector: %w", err)
	}
	return d, nil
}

// Schema creates an empty schema named after prefix and returns a store opened on it with its
// migrations applied, and a function that closes the store and drops the schema (unless the
// database is kept).
func (d *DB) Schema(ctx context.Context, prefix string, cfg store.Config) (*store.Store, func(), error) {
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	schema := "bench_" + prefix + "_" + hex.EncodeToString(rnd[:])
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	u, err := pgtest.WithSearchPath(d.url, schema+",public")
	if err != nil {
		return nil, nil, err
	}
	cfg.URL = u
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	drop := func() {
		st.Close()
		if d.keep {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, d.url); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			c.Close(ctx)
		}
	}
	return st, drop, nil
}

// Close drops the database if OpenDB created it and it is not kept.
func (d *DB) Close(ctx context.Context) error {
	if !d.own || d.keep {
		return nil
	}
	conn, err := pgx.Connect(ctx, d.server)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.Name, err)
	}
	return nil
}
