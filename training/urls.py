"""Training routes under /api/v1/training/."""

from django.urls import path

from training import apis

urlpatterns = [
    path("runs", apis.RunListStartApi.as_view(), name="training-runs"),
    path("runs/<int:run_id>", apis.RunDetailApi.as_view(), name="training-run"),
    path("runs/<int:run_id>/metrics", apis.RunMetricsApi.as_view(), name="training-run-metrics"),
    path("runs/<int:run_id>/cancel", apis.RunCancelApi.as_view(), name="training-run-cancel"),
    path("latest", apis.LatestRunApi.as_view(), name="training-latest"),
    path("datasets", apis.DatasetListApi.as_view(), name="training-datasets"),
]
