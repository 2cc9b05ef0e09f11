"""Rebuild the FAISS index from the vectors stored in the database (encoding only rows without one) and save it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from embeddings import services


class Command(BaseCommand):
    help = (
        "Rebuild the embedding index from the vectors stored in the database and save it (atomically). "
        "Only documents without a stored vector are encoded, unless --reencode."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reencode",
            action="store_true",
            help="Encode every document again and store the new vectors (every server reloads them).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        parser.add_argument(
            "--background",
            action="store_true",
            help="Enqueue the rebuild for a job worker (manage.py db_worker) and return at once.",
        )

    def handle(self, *args, reencode: bool = False, no_progress: bool = False, background: bool = False, **options):
        if background:
            from embeddings.tasks import rebuild_index

            job = rebuild_index.enqueue(reencode=reencode)
            self.stdout.write(self.style.SUCCESS(f"Enqueued the rebuild as job {job.id} (a job worker runs it)."))
            return
        store = services.get_store()
        total = services.index_rebuild_count(reencode=reencode)
        with tqdm(total=total, unit="doc", desc="encoding", disable=no_progress, file=self.stderr) as bar:
            try:
                count = services.index_rebuild(store=store, reencode=reencode, progress=bar.update)
            except services.IndexSaveFailed as exc:
                raise CommandError(exc.message) from exc
        encoded = f"{total} encoded" if total else "none needed encoding"
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt the {store.index_type} index: {count} vectors ({store.model_name}; {encoded})."
            )
        )
