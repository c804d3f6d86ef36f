'use strict'
// RFC 9457 problem details, with the type slugs of the project's OpenAPI
// document (/problems/<slug>), and the one error handler that turns every
// error into one: ours, Fastify's (media type, body size, validation) and
// the database's.

const PROBLEM_TYPE = 'application/problem+json'

const TITLES = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}

const SLUGS = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  409: 'conflict',
  412: 'precondition-failed',
  413: 'body-too-large',
  415: 'unsupported-media-type',
  422: 'validation-failed',
  429: 'quota-exceeded',
  500: 'internal',
  503: 'unavailable',
  504: 'timeout'
}

// An error that is an answer: thrown anywhere, rendered by the error handler.
class Problem extends Error {
  constructor (status, detail, { slug, title, errors, headers } = {}) {
    super(detail)
    this.status = status
    this.slug = slug || SLUGS[status] || 'internal'
    this.title = title || TITLES[status] || 'Error'
    this.errors = errors
    this.headers = headers
  }

  body () {
    const p = { type: `/problems/${this.slug}`, title: this.title, status: this.status, detail: this.message }
    if (this.errors && this.errors.length > 0) p.errors = this.errors
    return JSON.stringify(p)
  }
}

function invalid (status, field, message, detail) {
  return new Problem(status, detail, { errors: [{ field, message }] })
}

// Ajv errors -> {field, message}: JSON Pointers into the body, bare names
// for path and query parameters (the OpenAPI FieldError convention).
function fieldErrors (validation, context) {
  const inBody = context === 'body'
  return validation.map((e) => {
    let path = e.instancePath || ''
    if (e.keyword === 'required') path += '/' + e.params.missingProperty
    else if (e.keyword === 'additionalProperties') path += '/' + e.params.additionalProperty
    const field = inBody ? path : path.replace(/^\//, '')
    let message = e.message || 'is invalid'
    if (e.keyword === 'additionalProperties') message = 'is not a known field'
    return { field, message }
  })
}

function validationProblem (err) {
  const context = err.validationContext
  if (context === 'body') {
    return new Problem(422, 'one or more fields break the rules; see errors', {
      title: 'Invalid fields',
      errors: fieldErrors(err.validation, 'body')
    })
  }
  return new Problem(400, `invalid ${context === 'params' ? 'path' : 'query'} parameter`, {
    errors: fieldErrors(err.validation, context)
  })
}

// PostgreSQL and Redis failures (pg's and ioredis's messages): never the
// client's fault, so 503/504.
function dependencyProblem (err) {
  if (err.code === '57014') { // query_canceled: statement_timeout hit the deadline
    return new Problem(504, 'the request did not complete within its deadline', { title: 'Request timed out' })
  }
  const unavailable = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', '57P01', '57P02', '57P03', '08000', '08003', '08006']
  if (unavailable.includes(err.code) || /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error|Stream isn't writeable|Connection is closed|Command timed out/.test(err.message)) {
    return new Problem(503, 'a dependency is unavailable or the server is overloaded; retry later', {
      title: 'Service unavailable',
      headers: { 'retry-after': '1' }
    })
  }
  return null
}

function toProblem (err) {
  if (err instanceof Problem) return err
  if (err.validation) return validationProblem(err)
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Problem(415, 'send the body as application/json')
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Problem(413, 'the request body is over the limit')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalid(400, '', 'the request body is empty', 'a JSON body is required')
  }
  const dep = dependencyProblem(err)
  if (dep) return dep
  const status = err.statusCode
  if (Number.isInteger(status) && status >= 400 && status < 500) {
    return new Problem(status, err.message)
  }
  return null
}

function send (reply, problem) {
  if (problem.headers) reply.headers(problem.headers)
  return reply.code(problem.status).type(PROBLEM_TYPE).send(problem.body())
}

function errorHandler (err, request, reply) {
  let problem = toProblem(err)
  if (problem === null) {
    request.log.error({ err }, 'unhandled error')
    problem = new Problem(500, 'an unexpected error occurred; it has been logged', { title: 'Internal server error' })
  }
  return send(reply, problem)
}

module.exports = { Problem, invalid, errorHandler, send, toProblem, PROBLEM_TYPE }
