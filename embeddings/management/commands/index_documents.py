"""Add text and markdown files to a collection, as the add endpoint would."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from embeddings import services
from llmsite.errors import ApplicationError

SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text"}


def collect_files(paths: list[str]) -> list[Path]:
    """The text/markdown files named, or found under the folders named, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path} does not exist")
    return files


class Command(BaseCommand):
    help = "Index text/markdown files (or folders of them) into a collection; files already there are skipped."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or folders (.txt, .md, .rst).")
        parser.add_argument("--collection", required=True, help="Collection name (created if needed).")
        parser.add_argument("--user", help="Owner's username (default: the first superuser).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, paths, collection, user=None, no_progress=False, **options):
        files = collect_files(paths)
        owner = self._owner(user)
        if not files:
            raise CommandError("no .txt/.md/.rst files found")
        created = skipped = chunks = 0
        with tqdm(files, unit="file", desc="indexing", disable=no_progress, file=self.stderr) as bar:
            for path in bar:
                try:
                    text = path.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise CommandError(f"{path} is not UTF-8 text") from exc
                if not text.strip():
                    self.stderr.write(f"skipping empty file {path}")
                    continue
                metadata = {"filename": path.name, "path": str(path.resolve())}
                try:
                    result = services.document_add(
                        user=owner, documents=[{"text": text, "metadata": metadata}], collection=collection
                    )
                except ApplicationError as exc:
                    raise CommandError(f"{path}: {exc.message}") from exc
                created += len(result.created)
                skipped += len(result.skipped)
                chunks += result.chunks
        self.stdout.write(
            self.style.SUCCESS(f"{collection}: {created} documents added ({chunks} chunks), {skipped} already there.")
        )

    def _owner(self, username: str | None):
        users = get_user_model().objects
        if username:
            found = users.filter(username=username).first()
            if found is None:
                raise CommandError(f"no user named {username!r}")
            return found
        found = users.filter(Q(is_superuser=True)).order_by("id").first()
        if found is None:
            raise CommandError("no superuser exists: pass --user USERNAME")
        return found
