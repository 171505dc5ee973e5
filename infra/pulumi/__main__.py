"""genrec's Pulumi program (Python). Everything lives in the genrec_infra package; see README.md."""

from genrec_infra.program import main

main()
