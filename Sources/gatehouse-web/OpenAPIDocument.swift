/// The activity API's OpenAPI 3 document, served at /api/v1/openapi.json.
/// The same text as docs/activity-api.openapi.json (Tests/e2e/test_activity_api.py
/// checks they match): edit both together.
enum OpenAPIDocument {
    static let json = #"""
{
 "openapi": "3.0.3",
 "info": {
  "title": "Gatehouse activity API",
  "version": "1.0.0",
  "description": "Read-only audit activity of the Gatehouse SSH gateway, in the manner of the Office 365 Management Activity API. Every call needs a bearer token made with `gatehouse api-token create --name NAME --tenant TENANT`; a token sees only its tenants' events, requests and sessions."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "security": [
  {
   "bearerAuth": []
  }
 ],
 "paths": {
  "/api/v1/activity": {
   "get": {
    "operationId": "listActivity",
    "summary": "Audit events in a time window, oldest first, paged.",
    "parameters": [
     {
      "name": "startTime",
      "in": "query",
      "required": false,
      "description": "Start of the window (RFC 3339); default endTime minus 24 hours.",
      "schema": {
       "type": "string",
       "format": "date-time"
      }
     },
     {
      "name": "endTime",
      "in": "query",
      "required": false,
      "description": "End of the window, exclusive (RFC 3339); default now, or startTime plus 24 hours. At most 7 days after startTime.",
      "schema": {
       "type": "string",
       "format": "date-time"
      }
     },
     {
      "name": "contentType",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": [
        "Audit.Session",
        "Audit.Command",
        "Audit.Lockbox",
        "Audit.Gateway"
       ]
      }
     },
     {
      "name": "user",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "minLength": 1,
       "maxLength": 64,
       "pattern": "^[A-Za-z0-9._-]+$"
      }
     },
     {
      "name": "kind",
      "in": "query",
      "required": false,
      "description": "An audit event kind such as command.allowed.",
      "schema": {
       "type": "string",
       "minLength": 1,
       "maxLength": 64,
       "pattern": "^[a-z.-]+$"
      }
     },
     {
      "name": "pageSize",
      "in": "query",
      "required": false,
      "description": "Items per page (1-100, default 50).",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 100
      }
     },
     {
      "name": "nextPage",
      "in": "query",
      "required": false,
      "description": "The cursor from the previous page's nextPageUri.",
      "schema": {
       "type": "string",
       "pattern": "^[0-9]{1,9}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "A page of events.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ActivityPage"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  },
  "/api/v1/requests": {
   "get": {
    "operationId": "listRequests",
    "summary": "Lockbox requests and their approvals, newest first, paged.",
    "parameters": [
     {
      "name": "state",
      "in": "query",
      "required": false,
      "schema": {
       "$ref": "#/components/schemas/RequestState"
      }
     },
     {
      "name": "pageSize",
      "in": "query",
      "required": false,
      "description": "Items per page (1-100, default 50).",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 100
      }
     },
     {
      "name": "nextPage",
      "in": "query",
      "required": false,
      "description": "The cursor from the previous page's nextPageUri.",
      "schema": {
       "type": "string",
       "pattern": "^[0-9]{1,9}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "A page of requests.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RequestPage"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  },
  "/api/v1/requests/{id}": {
   "get": {
    "operationId": "getRequest",
    "summary": "One Lockbox request with its approvals.",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "integer",
       "minimum": 1
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The request.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "404": {
      "$ref": "#/components/responses/E404"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  },
  "/api/v1/sessions": {
   "get": {
    "operationId": "listSessions",
    "summary": "Session metadata with a link to each transcript, paged.",
    "parameters": [
     {
      "name": "startTime",
      "in": "query",
      "required": false,
      "description": "Start of the window (RFC 3339); default endTime minus 24 hours.",
      "schema": {
       "type": "string",
       "format": "date-time"
      }
     },
     {
      "name": "endTime",
      "in": "query",
      "required": false,
      "description": "End of the window, exclusive (RFC 3339); default now, or startTime plus 24 hours. At most 7 days after startTime.",
      "schema": {
       "type": "string",
       "format": "date-time"
      }
     },
     {
      "name": "user",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "minLength": 1,
       "maxLength": 64,
       "pattern": "^[A-Za-z0-9._-]+$"
      }
     },
     {
      "name": "pageSize",
      "in": "query",
      "required": false,
      "description": "Items per page (1-100, default 50).",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 100
      }
     },
     {
      "name": "nextPage",
      "in": "query",
      "required": false,
      "description": "The cursor from the previous page's nextPageUri.",
      "schema": {
       "type": "string",
       "pattern": "^[0-9]{1,9}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "A page of sessions.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/SessionPage"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  },
  "/api/v1/sessions/{id}": {
   "get": {
    "operationId": "getSession",
    "summary": "One session's metadata.",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string",
       "pattern": "^[0-9A-Za-z_-]{1,64}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The session.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Session"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "404": {
      "$ref": "#/components/responses/E404"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  },
  "/api/v1/sessions/{id}/transcript": {
   "get": {
    "operationId": "getTranscript",
    "summary": "The session's transcript, an asciicast v2 file.",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string",
       "pattern": "^[0-9A-Za-z_-]{1,64}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The asciicast.",
      "content": {
       "application/x-asciicast": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/E400"
     },
     "401": {
      "$ref": "#/components/responses/E401"
     },
     "404": {
      "$ref": "#/components/responses/E404"
     },
     "503": {
      "$ref": "#/components/responses/E503"
     }
    }
   }
  }
 },
 "components": {
  "securitySchemes": {
   "bearerAuth": {
    "type": "http",
    "scheme": "bearer",
    "description": "A token from `gatehouse api-token create`."
   }
  },
  "responses": {
   "E400": {
    "description": "A parameter is invalid.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "E401": {
    "description": "No valid bearer token.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "E404": {
    "description": "Not found, or not in the token's tenants.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "E503": {
    "description": "The audit data is unavailable.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   }
  },
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "additionalProperties": false,
    "properties": {
     "error": {
      "type": "object",
      "required": [
       "code",
       "message"
      ],
      "additionalProperties": false,
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       }
      }
     }
    }
   },
   "ActivityItem": {
    "type": "object",
    "additionalProperties": false,
    "required": [
     "id",
     "seq",
     "creationTime",
     "kind",
     "contentType",
     "user",
     "session",
     "scope",
     "requestId",
     "fields"
    ],
    "properties": {
     "id": {
      "type": "string",
      "description": "The event's chain hash."
     },
     "seq": {
      "type": "integer"
     },
     "creationTime": {
      "type": "string",
      "format": "date-time"
     },
     "kind": {
      "type": "string"
     },
     "contentType": {
      "type": "string",
      "enum": [
       "Audit.Session",
       "Audit.Command",
       "Audit.Lockbox",
       "Audit.Gateway"
      ]
     },
     "user": {
      "type": "string",
      "nullable": true
     },
     "session": {
      "type": "string",
      "nullable": true
     },
     "scope": {
      "type": "string",
      "nullable": true
     },
     "requestId": {
      "type": "integer",
      "nullable": true
     },
     "fields": {
      "type": "object",
      "additionalProperties": {
       "type": "string"
      }
     }
    }
   },
   "ActivityPage": {
    "type": "object",
    "required": [
     "items",
     "nextPageUri"
    ],
    "additionalProperties": false,
    "properties": {
     "items": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/ActivityItem"
      }
     },
     "nextPageUri": {
      "type": "string",
      "nullable": true
     }
    }
   },
   "RequestState": {
    "type": "string",
    "enum": [
     "pending-manager",
     "pending-customer",
     "approved",
     "active",
     "denied",
     "expired",
     "revoked",
     "cancelled"
    ]
   },
   "Approval": {
    "type": "object",
    "required": [
     "stage",
     "approver",
     "comment"
    ],
    "additionalProperties": false,
    "properties": {
     "stage": {
      "type": "string",
      "enum": [
       "manager",
       "customer"
      ]
     },
     "approver": {
      "type": "string"
     },
     "comment": {
      "type": "string",
      "nullable": true
     }
    }
   },
   "Request": {
    "type": "object",
    "additionalProperties": false,
    "required": [
     "id",
     "state",
     "stage",
     "requester",
     "role",
     "scope",
     "durationSeconds",
     "reason",
     "ticket",
     "createdAt",
     "activatedAt",
     "deadline",
     "session",
     "endReason",
     "approvals"
    ],
    "properties": {
     "id": {
      "type": "integer"
     },
     "state": {
      "$ref": "#/components/schemas/RequestState"
     },
     "stage": {
      "type": "string"
     },
     "requester": {
      "type": "string"
     },
     "role": {
      "type": "string"
     },
     "scope": {
      "type": "string"
     },
     "durationSeconds": {
      "type": "integer"
     },
     "reason": {
      "type": "string"
     },
     "ticket": {
      "type": "string",
      "nullable": true
     },
     "createdAt": {
      "type": "string",
      "format": "date-time"
     },
     "activatedAt": {
      "type": "string",
      "nullable": true,
      "format": "date-time"
     },
     "deadline": {
      "type": "string",
      "nullable": true,
      "format": "date-time"
     },
     "session": {
      "type": "string",
      "nullable": true
     },
     "endReason": {
      "type": "string",
      "nullable": true
     },
     "approvals": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Approval"
      }
     }
    }
   },
   "RequestPage": {
    "type": "object",
    "required": [
     "items",
     "nextPageUri"
    ],
    "additionalProperties": false,
    "properties": {
     "items": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Request"
      }
     },
     "nextPageUri": {
      "type": "string",
      "nullable": true
     }
    }
   },
   "Session": {
    "type": "object",
    "additionalProperties": false,
    "required": [
     "id",
     "user",
     "node",
     "client",
     "started",
     "ended",
     "endReason",
     "commands",
     "denied",
     "transcriptUri"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "user": {
      "type": "string",
      "nullable": true
     },
     "node": {
      "type": "string",
      "nullable": true
     },
     "client": {
      "type": "string",
      "nullable": true
     },
     "started": {
      "type": "string",
      "nullable": true,
      "format": "date-time"
     },
     "ended": {
      "type": "string",
      "nullable": true,
      "format": "date-time"
     },
     "endReason": {
      "type": "string",
      "nullable": true
     },
     "commands": {
      "type": "integer"
     },
     "denied": {
      "type": "integer"
     },
     "transcriptUri": {
      "type": "string",
      "nullable": true
     }
    }
   },
   "SessionPage": {
    "type": "object",
    "required": [
     "items",
     "nextPageUri"
    ],
    "additionalProperties": false,
    "properties": {
     "items": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Session"
      }
     },
     "nextPageUri": {
      "type": "string",
      "nullable": true
     }
    }
   }
  }
 }
}
"""#
}
