"""Evaluation routes, mounted at /api/v1/evaluations by llmsite/urls.py.

The mount has no trailing slash (the list is /api/v1/evaluations), so the detail routes begin with
one; `[/]` spells it without tripping Django's urls.W002 check for routes beginning with "/". Ids
have at most 18 digits: a larger number is no row, and the database must never see it.
"""

from django.urls import path, re_path

from evaluation import apis

ID = r"(?P<evaluation_id>[0-9]{1,18})"

urlpatterns = [
    path("", apis.EvaluationListStartApi.as_view(), name="evaluations"),
    re_path(rf"^[/]{ID}\Z", apis.EvaluationDetailApi.as_view(), name="evaluation"),
    re_path(rf"^[/]{ID}/cancel\Z", apis.EvaluationCancelApi.as_view(), name="evaluation-cancel"),
]
