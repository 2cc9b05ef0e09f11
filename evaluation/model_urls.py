"""Promotion routes under /api/v1/models/, mounted by llmsite/urls.py before the inference app's models/ routes."""

from django.urls import path

from evaluation import apis

urlpatterns = [
    path("rollback", apis.RollbackApi.as_view(), name="model-rollback"),
    path("promotions", apis.PromotionListApi.as_view(), name="model-promotions"),
    path("<path:model>/promote", apis.PromoteApi.as_view(), name="model-promote"),
]
