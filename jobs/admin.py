"""The job workers and periodic schedules, read-only (the jobs themselves: django_tasks_db's "Task Results")."""

from django.contrib import admin

from jobs.models import JobWorker, Schedule


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(JobWorker)
class JobWorkerAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "queues", "started_at", "heartbeat_at"]


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ["task_path", "next_at", "last_enqueued_at"]
