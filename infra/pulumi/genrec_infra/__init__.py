"""genrec's Pulumi program: one module per component, wired together in `program.main`."""
