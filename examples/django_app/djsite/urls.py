from django.urls import path

from . import views

urlpatterns = [
    path("api/", views.api),
    path("echo/", views.echo),
    path("hello/<str:name>/", views.hello),
]
