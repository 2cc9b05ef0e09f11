"""The evaluation pages (staff): the list, and one evaluation with its charts, examples and promotion controls.

The pages are shells: static/evaluation/evaluation.js fills them from the JSON API.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from evaluation import selectors
from evaluation.models import Evaluation


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Evaluations are for staff.")


@never_cache
@login_required
def evaluation_list_page(request: HttpRequest) -> HttpResponse:
    """Evaluations, newest first, and a form that starts one; anonymous visitors go to the login page."""
    _staff_only(request)
    return render(request, "evaluation/list.html", {"statuses": Evaluation.Status.values})


@never_cache
@login_required
def evaluation_page(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    _staff_only(request)
    evaluation = selectors.evaluation_get(evaluation_id=evaluation_id)
    if evaluation is None:
        raise Http404("No evaluation matches the given query.")
    return render(request, "evaluation/detail.html", {"evaluation": evaluation})
