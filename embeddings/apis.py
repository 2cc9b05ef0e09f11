"""Embeddings REST API (docs/api.md, Embeddings): thin views that parse, call a service, render.

Limits (batch size, text length, metadata size, top_k) are enforced in services, so the API,
the CLI and RAG retrieval refuse the same things with the same messages.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_EMBEDDINGS
from accounts.permissions import IsStaff
from embeddings import selectors, services
from embeddings.services import validation
from llmsite.serializers import OFFSET_MAX, StrictCharField, StrictSerializer
from usage.services import Meter

TAGS = ["embeddings"]
UNAVAILABLE = {503: OpenApiResponse(description="the embedding index cannot be loaded (the message says why)")}
ERRORS = {
    400: OpenApiResponse(description="invalid input; the message names the limit and `field` the input"),
    403: OpenApiResponse(description="the API key's scopes or model list do not allow this"),
    429: OpenApiResponse(description="a usage limit would be crossed (`quota_exceeded`); see Retry-After"),
    503: OpenApiResponse(description="the embedding model cannot be loaded (the reason is in the message)"),
}


# The services check texts, names and metadata, so the API, the CLI and RAG refuse the same things with the
# same messages; these fields show those rules in the schema.


@extend_schema_field({"type": "string", "minLength": 1, "pattern": r"\S"})
class TextField(serializers.Field):
    """A text to embed or a query: not blank, at most EMBEDDINGS_MAX_TEXT_CHARS characters."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs: Any):
        super().__init__(validators=[ProhibitNullCharactersValidator()], **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> str:
        return value


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[^/]*\S[^/]*$"})
class CollectionNameField(StrictCharField):
    """A collection's name: 1 to 100 characters, not blank, no '/'."""

    def __init__(self, **kwargs: Any):
        super().__init__(required=False, allow_blank=True, max_length=100, **kwargs)


@extend_schema_field(OpenApiTypes.OBJECT)
class MetadataField(serializers.JSONField):
    """A JSON object (at most EMBEDDINGS_MAX_METADATA_BYTES)."""


class EncodeApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "EmbedEncode"

        texts = serializers.ListField(
            child=TextField(),
            min_length=1,
            error_messages={"min_length": "give at least one text"},
            help_text="1 to EMBEDDINGS_MAX_BATCH texts",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedEncodeResult"

        model = serializers.CharField()
        dim = serializers.IntegerField()
        embeddings = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))

    @extend_schema(
        operation_id="embed_encode",
        summary="Encode texts into unit vectors (cosine similarity = dot product)",
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model, dim, vectors = services.encode(
            texts=serializer.validated_data["texts"], meter=Meter.for_request(request)
        )
        return Response({"model": model, "dim": dim, "embeddings": vectors.tolist()})


class DocumentInputSerializer(StrictSerializer):
    text = TextField()
    metadata = MetadataField(required=False)


class DocumentAddApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "EmbedDocumentAdd"

        documents = DocumentInputSerializer(
            many=True,
            allow_empty=False,
            error_messages={"empty": "give at least one document"},
            help_text="1 to EMBEDDINGS_MAX_BATCH",
        )
        collection = CollectionNameField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedDocumentAddResult"

        ids = serializers.ListField(child=serializers.IntegerField(), help_text="One per input document, in order.")
        created = serializers.ListField(child=serializers.IntegerField())
        skipped = serializers.ListField(
            child=serializers.IntegerField(), help_text="Texts already in the collection (their existing ids)."
        )
        chunks = serializers.IntegerField(help_text="Chunk documents made from long texts.")
        collection = serializers.CharField()

    @extend_schema(
        operation_id="embed_add",
        summary="Add documents to one of your collections (created on demand; default `default`)",
        description="Long texts are split into overlapping chunks; texts already in the collection are skipped.",
        request=InputSerializer,
        responses={201: OutputSerializer, **ERRORS},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.document_add(
            user=request.user,
            documents=data["documents"],
            collection=data.get("collection"),
            meter=Meter.for_request(request),
        )
        body = {
            "ids": result.ids,
            "created": result.created,
            "skipped": result.skipped,
            "chunks": result.chunks,
            "collection": data.get("collection", services.DEFAULT_COLLECTION).strip(),
        }
        return Response(body, status=status.HTTP_201_CREATED)


# Room for the multipart envelope (boundaries, the other fields) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class FileUploadApi(APIView):
    required_scope = SCOPE_EMBEDDINGS
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "EmbedFileUpload"

        file = serializers.FileField(
            allow_empty_file=True,  # the service refuses an empty file with its own reason
            help_text="PDF, DOCX, HTML, Markdown or plain text; the type is read from the content, not the name.",
        )
        collection = CollectionNameField()
        title = StrictCharField(required=False, allow_blank=True, max_length=200)
        upload_id = StrictCharField(
            required=False,
            max_length=64,
            help_text="Your id for this upload (8 to 64 letters, digits, - or _): GET files/progress/{upload_id}.",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedFileUploadResult"

        document_id = serializers.IntegerField(help_text="The file's document (its chunks point at it).")
        ids = serializers.ListField(child=serializers.IntegerField(), help_text="[document_id], like /embed/add.")
        created = serializers.BooleanField(help_text="False when the collection already had this text.")
        replaced = serializers.ListField(
            child=serializers.IntegerField(), help_text="Earlier uploads of the same file name, now deleted."
        )
        chunks = serializers.IntegerField()
        pages = serializers.IntegerField(allow_null=True, help_text="Pages of a PDF; null for other types.")
        type = serializers.CharField(source="kind", help_text="pdf, docx, html, markdown or text (from the content).")
        filename = serializers.CharField()
        title = serializers.CharField()
        collection = serializers.CharField()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication, whose CSRF check would parse (and spool) the whole multipart body.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        services.file_size_check(length, what="the upload", slack=MULTIPART_OVERHEAD)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="embed_file_upload",
        summary="Upload a file (PDF, DOCX, HTML, Markdown, text) into one of your collections",
        description=(
            "The file is split along its structure (pages, headings, paragraphs) into chunks measured in the "
            "encoder's tokens; each chunk keeps its `page` and `heading`. A file of the same name in the "
            "collection is replaced. A file that cannot be used is a 400 with `field: file` and a `reason` "
            "(empty, too_large, too_many_pages, unsupported_type, type_mismatch, corrupt, encrypted, image_only, "
            "no_text); nothing is stored then."
        ),
        request={"multipart/form-data": InputSerializer},
        responses={201: OutputSerializer, **ERRORS},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        services.file_size_check(upload.size, what=upload.name)  # before reading it into memory
        progress = services.upload_progress_reporter(user=request.user, upload_id=data.get("upload_id"))
        result = services.file_add(
            user=request.user,
            data=upload.read(),
            filename=upload.name,
            collection=data.get("collection"),
            title=data.get("title") or None,
            meter=Meter.for_request(request),
            progress=progress,
        )
        body = {**result.__dict__, "ids": [result.document_id]}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class FileUploadProgressApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedFileUploadProgress"

        stage = serializers.ChoiceField(choices=["extracting", "encoding", "storing", "done", "failed"])
        done = serializers.IntegerField(help_text="Chunks encoded so far (encoding), else 0 or all.")
        total = serializers.IntegerField(help_text="Chunks to encode (0 until known).")

    @extend_schema(
        operation_id="embed_file_upload_progress",
        summary="How far the server is with one of your uploads (sent with an `upload_id`)",
        responses={200: OutputSerializer, 404: OpenApiResponse(description="no upload of yours with that id")},
        tags=TAGS,
    )
    def get(self, request: Request, upload_id: str) -> Response:
        found = services.upload_progress_get(user=request.user, upload_id=upload_id)
        return Response(self.OutputSerializer(found).data)


class SearchResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    score = serializers.FloatField(
        help_text="The mode's score, higher is better: cosine similarity (vector), BM25 (keyword), fused rank (hybrid)."
    )
    metadata = serializers.DictField()
    collection = serializers.CharField()
    document_id = serializers.IntegerField(help_text="The source document of a chunk, else the document itself.")
    chunk_index = serializers.IntegerField(allow_null=True)
    page = serializers.IntegerField(required=False, help_text="The passage's page in its file, when known.")
    heading = serializers.CharField(required=False, help_text="The heading the passage is under, when known.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        body = super().to_representation(instance)
        # Present only when the passage's file said (a pasted text has neither).
        for key in ("page", "heading"):
            if body.get(key) is None:
                body.pop(key, None)
        return body


TOP_K_RANGE = f"top_k must be an integer from 1 to {validation.MAX_TOP_K}"
MODE_CHOICES = f"mode must be one of {', '.join(validation.SEARCH_MODES)}"


class SearchApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "EmbedSearch"

        query = TextField()
        top_k = serializers.IntegerField(
            required=False,
            default=5,
            min_value=1,
            max_value=validation.MAX_TOP_K,
            error_messages={"min_value": TOP_K_RANGE, "max_value": TOP_K_RANGE},
        )
        collection = CollectionNameField()
        mode = serializers.ChoiceField(
            choices=validation.SEARCH_MODES,
            required=False,
            error_messages={"invalid_choice": MODE_CHOICES},
            help_text="vector (meaning), keyword (BM25) or hybrid (both fused by rank); default EMBEDDINGS_SEARCH_MODE",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedSearchResult"

        results = SearchResultSerializer(many=True)

    @extend_schema(
        operation_id="embed_search",
        summary="Search your own and shared collections (or one collection) by meaning, words or both",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            404: OpenApiResponse(description="no collection of that name is visible to you"),
            **ERRORS,
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        results = services.search(
            user=request.user,
            query=data["query"],
            top_k=data["top_k"],
            collection=data.get("collection"),
            meter=Meter.for_request(request),
            mode=data.get("mode"),
        )
        return Response(self.OutputSerializer({"results": results}).data)


class DocumentDeleteApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    @extend_schema(
        operation_id="embed_document_delete",
        summary="Delete one of your documents (and its chunks) from the database and the index",
        responses={
            204: OpenApiResponse(description="Deleted."),
            404: OpenApiResponse(description="no such document of yours"),
            **UNAVAILABLE,
        },
        tags=TAGS,
    )
    def delete(self, request: Request, document_id: int) -> Response:
        services.document_delete(user=request.user, document_id=document_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IndexSaveApi(APIView):
    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedIndexSaveResult"

        model = serializers.CharField()
        dim = serializers.IntegerField()
        index_type = serializers.CharField()
        count = serializers.IntegerField()
        checksum = serializers.CharField()
        saved_at = serializers.FloatField()

    @extend_schema(
        operation_id="embed_save",
        summary="Save the index and its manifest to disk (staff)",
        request=None,
        responses={200: OutputSerializer, **UNAVAILABLE},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        manifest = services.index_save()
        return Response(self.OutputSerializer(manifest).data)


class IndexLoadApi(APIView):
    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedIndexLoadResult"

        origin = serializers.ChoiceField(choices=["loaded", "rebuilt"])
        vectors = serializers.IntegerField()
        reason = serializers.CharField(required=False, help_text="Why the saved index was not used.")
        added = serializers.IntegerField(required=False, help_text="Vectors the saved index was missing.")
        removed = serializers.IntegerField(required=False, help_text="Vectors of documents deleted since.")

    @extend_schema(
        operation_id="embed_load",
        summary="Reload the index from disk, verified; rebuilt from the database if unusable (staff)",
        request=None,
        responses={200: OutputSerializer, **UNAVAILABLE},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        return Response(self.OutputSerializer(services.index_load()).data)


class StatsApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedStatsResult"

        model = serializers.CharField()
        dim = serializers.IntegerField()
        documents = serializers.IntegerField(help_text="Documents (not counting chunks), site-wide.")
        index_type = serializers.CharField()
        collections = serializers.IntegerField(help_text="Collections, site-wide.")
        vectors = serializers.IntegerField()
        visible_collections = serializers.IntegerField()
        yours = serializers.DictField()
        index = serializers.DictField()
        limits = serializers.DictField()

    @extend_schema(
        operation_id="embed_stats",
        summary="Model, dimension, index type and counts",
        responses={200: OutputSerializer, **UNAVAILABLE},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(services.stats(user=request.user)).data)


class CollectionSerializer(serializers.Serializer):
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    shared = serializers.BooleanField()
    created = serializers.DateTimeField()


class CollectionItemSerializer(CollectionSerializer):
    documents = serializers.IntegerField(source="documents_count")
    vectors = serializers.IntegerField(source="vectors_count")
    mine = serializers.SerializerMethodField()

    def get_mine(self, obj: Any) -> bool:
        return obj.owner_id == self.context["user"].pk


class CollectionListApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedCollectionListResult"

        results = CollectionItemSerializer(many=True)

    @extend_schema(
        operation_id="embed_collections",
        summary="Your collections and the shared ones, with document counts",
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        collections = selectors.collection_list(user=request.user)
        return Response(self.OutputSerializer({"results": collections}, context={"user": request.user}).data)


class CollectionDeleteApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedCollectionDeleteResult"

        collection = serializers.CharField()
        documents = serializers.IntegerField(help_text="Documents deleted (not counting chunks).")
        vectors = serializers.IntegerField(help_text="Vectors removed from the index.")

    @extend_schema(
        operation_id="embed_collection_delete",
        summary="Delete one of your collections: its documents, chunks and vectors (every server's index follows)",
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description="the name cannot be a collection's (the message gives the rule)"),
            404: OpenApiResponse(description="no collection of yours has that name (shared ones of others included)"),
            **UNAVAILABLE,
        },
        tags=TAGS,
    )
    def delete(self, request: Request, name: str) -> Response:
        deleted = services.collection_delete(user=request.user, name=name)
        body = {"collection": name.strip(), "documents": deleted.documents, "vectors": deleted.vectors}
        return Response(self.OutputSerializer(body).data)


class CollectionDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    snippet = serializers.SerializerMethodField()
    chars = serializers.SerializerMethodField()
    metadata = serializers.DictField()
    chunks = serializers.IntegerField(source="chunks_count")
    created = serializers.DateTimeField()

    def get_snippet(self, obj: Any) -> str:
        return obj.text[: services.SNIPPET_CHARS]

    def get_chars(self, obj: Any) -> int:
        return len(obj.text)


class CollectionDocumentsApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedCollectionDocumentsQuery"

        owner = serializers.CharField(required=False, help_text="Pick another user's shared collection by owner.")
        limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=100)
        offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=OFFSET_MAX)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbedCollectionDocumentsResult"

        collections = CollectionSerializer(many=True)
        count = serializers.IntegerField()
        results = CollectionDocumentSerializer(many=True)

    @extend_schema(
        operation_id="embed_collection_documents",
        summary="Documents (not chunks) of a collection you can see, newest first",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, 404: OpenApiResponse(description="no collection of that name is visible")},
        tags=TAGS,
    )
    def get(self, request: Request, name: str) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        collections = selectors.collection_for_user(user=request.user, name=name, owner=params.get("owner"))
        documents = selectors.collection_documents(collections=collections)
        page = documents[params["offset"] : params["offset"] + params["limit"]]
        body = {"collections": collections, "count": documents.count(), "results": page}
        return Response(self.OutputSerializer(body).data)
