"""The evaluation pages, mounted at /evaluations/ by llmsite/urls.py (the API lives in evaluation/urls.py)."""

from django.urls import path, re_path

from evaluation import views

urlpatterns = [
    path("", views.evaluation_list_page, name="evaluations-page"),
    re_path(r"^(?P<evaluation_id>[0-9]{1,18})/\Z", views.evaluation_page, name="evaluation-page"),
]
