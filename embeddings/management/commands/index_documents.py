"""Add files (PDF, DOCX, HTML, Markdown, text) or folders of them to a collection, as the files endpoint would."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.template.defaultfilters import pluralize
from tqdm import tqdm

from embeddings import services
from llmsite.errors import ApplicationError

SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text", ".pdf", ".docx", ".html", ".htm"}


def collect_files(paths: list[str]) -> list[Path]:
    """The files named, or the supported files found under the folders named, in a stable order."""
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
    help = (
        "Index files (PDF, DOCX, HTML, Markdown, text) or folders of them into a collection. A file whose text is "
        "already there is skipped; a changed file of the same name replaces the earlier one; a file that cannot "
        "be read is reported and the rest go on."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "paths", nargs="+", metavar="PATH", help="Files or folders (.pdf, .docx, .html, .md, .txt)."
        )
        parser.add_argument("--collection", required=True, help="Collection name (created if needed).")
        parser.add_argument("--user", help="Owner's username (default: the first superuser).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, paths, collection, user=None, no_progress=False, **options):
        files = collect_files(paths)
        owner = self._owner(user)
        if not files:
            raise CommandError("no .pdf/.docx/.html/.md/.txt files found")
        created = skipped = replaced = chunks = 0
        refused: list[str] = []
        with tqdm(files, unit="file", desc="indexing", disable=no_progress, file=self.stderr) as bar:
            for path in bar:
                bar.set_postfix_str(path.name[:40])
                try:
                    result = services.file_add(
                        user=owner, data=path.read_bytes(), filename=path.name, collection=collection
                    )
                except ApplicationError as exc:
                    if exc.field != "file":  # the collection name or a limit of the whole run: stop
                        raise CommandError(f"{path}: {exc.message}") from exc
                    refused.append(f"{path}: {exc.message}")
                    continue
                created += result.created
                skipped += not result.created
                replaced += len(result.replaced)
                chunks += result.chunks if result.created else 0
        for line in refused:
            self.stderr.write(f"refused {line}")
        summary = (
            f"{collection}: {created} document{pluralize(created)} added ({chunks} chunk{pluralize(chunks)}), "
            f"{skipped} already there"
        )
        if replaced:
            summary += f", {replaced} replaced"
        if refused:
            raise CommandError(f"{summary}; {len(refused)} file{pluralize(len(refused))} refused (listed above).")
        self.stdout.write(self.style.SUCCESS(f"{summary}."))

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
