"""Mounted at /api/v1/embed/ by llmsite/urls.py."""

from django.urls import path

from embeddings import apis

urlpatterns = [
    path("encode", apis.EncodeApi.as_view(), name="embed-encode"),
    path("add", apis.DocumentAddApi.as_view(), name="embed-add"),
    path("files", apis.FileUploadApi.as_view(), name="embed-files"),
    path("files/progress/<str:upload_id>", apis.FileUploadProgressApi.as_view(), name="embed-file-progress"),
    path("search", apis.SearchApi.as_view(), name="embed-search"),
    path("documents/<int:document_id>", apis.DocumentDeleteApi.as_view(), name="embed-document-delete"),
    path("save", apis.IndexSaveApi.as_view(), name="embed-save"),
    path("load", apis.IndexLoadApi.as_view(), name="embed-load"),
    path("stats", apis.StatsApi.as_view(), name="embed-stats"),
    path("collections", apis.CollectionListApi.as_view(), name="embed-collections"),
    path("collections/<str:name>", apis.CollectionDeleteApi.as_view(), name="embed-collection-delete"),
    path("collections/<str:name>/documents", apis.CollectionDocumentsApi.as_view(), name="embed-collection-documents"),
]
