from django.contrib import admin, messages
from django.db.models import Count, Q

from embeddings import services
from embeddings.models import Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "shared", "documents_count", "vectors_count", "created")
    list_filter = ("shared", "created")
    list_editable = ("shared",)  # staff share a collection with every user here
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    actions = ["delete_with_vectors"]

    @admin.action(description="Delete selected collections with their documents and vectors", permissions=["delete"])
    def delete_with_vectors(self, request, queryset) -> None:
        documents = vectors = 0
        for collection in queryset.select_related("owner"):
            deleted = services.collection_delete(user=collection.owner, name=collection.name)
            documents += deleted.documents
            vectors += deleted.vectors
        self.message_user(
            request, f"Deleted {documents} documents and {vectors} vectors from the index.", messages.SUCCESS
        )

    # Deleting through the service (Django's own delete page and action included) updates this
    # process's index at once; the removals are logged for the other servers either way.
    def delete_model(self, request, obj: Collection) -> None:
        services.collection_delete(user=obj.owner, name=obj.name)

    def delete_queryset(self, request, queryset) -> None:
        for collection in queryset.select_related("owner"):
            services.collection_delete(user=collection.owner, name=collection.name)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _documents=Count("documents", filter=Q(documents__source__isnull=True)),
                _vectors=Count("documents", filter=Q(documents__indexed=True)),
            )
        )

    @admin.display(description="documents", ordering="_documents")
    def documents_count(self, obj: Collection) -> int:
        return obj._documents

    @admin.display(description="vectors", ordering="_vectors")
    def vectors_count(self, obj: Collection) -> int:
        return obj._vectors


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("id", "snippet", "collection", "owner", "chunk_index", "page", "heading", "indexed", "created")
    list_filter = ("indexed", "collection__shared", "created", "collection")
    search_fields = ("text", "content_hash", "collection__name", "owner__username")
    list_select_related = ("collection", "collection__owner", "owner")
    raw_id_fields = ("owner", "collection", "source")
    readonly_fields = ("content_hash", "indexed", "created")

    @admin.display(description="text")
    def snippet(self, obj: Document) -> str:
        return obj.text[:80]

    # Deleting through the service keeps the FAISS index in step with the database.
    def delete_model(self, request, obj: Document) -> None:
        services.document_delete(user=obj.owner, document_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for doc in queryset.select_related("owner"):
            if Document.objects.filter(pk=doc.pk).exists():  # a chunk may have gone with its source
                services.document_delete(user=doc.owner, document_id=doc.pk)
