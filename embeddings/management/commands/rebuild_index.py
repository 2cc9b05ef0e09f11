"""Re-encode every document in the database into a fresh FAISS index and save it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from embeddings import services


class Command(BaseCommand):
    help = "Rebuild the embedding index from the documents in the database and save it (atomically)."

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, no_progress: bool = False, **options):
        store = services.get_store()
        total = services.index_rebuild_count()
        with tqdm(total=total, unit="doc", desc="encoding", disable=no_progress, file=self.stderr) as bar:
            try:
                count = services.index_rebuild(store=store, progress=bar.update)
            except services.IndexSaveFailed as exc:
                raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Rebuilt the {store.index_type} index: {count} vectors ({store.model_name}).")
        )
