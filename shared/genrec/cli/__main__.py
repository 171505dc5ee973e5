from genrec.cli import app

app()
