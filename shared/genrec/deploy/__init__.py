"""What `pulumi up` would create, without a cluster: render the Pulumi program's objects to YAML
(`genrec deploy render`) and validate them (`genrec deploy check`).

    mockrun     runs infra/pulumi under Pulumi's mocks (one interpreter per stack) → registered resources
    render      registered resources → one YAML file per object (secrets as placeholders)
    manifests   reads a rendered folder back
    check       every validator and invariant over a rendered folder → problems
"""
